"""A run's lifecycle: open it (or reopen the training's), log into it, end it with the right
status. Stages get a tracker (a real one, or a null one when tracking is off or the process is
not rank 0) and never branch on tracking themselves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import Interrupted
from pipeline.tracking import models
from pipeline.tracking.datasets import dataset_inputs
from pipeline.tracking.destination import (
    Destination,
    destination,
    dvc_tags,
    git_tags,
    repo_root,
    tracking_enabled,
)
from pipeline.tracking.sender import Outbox
from pipeline.tracking.spool import SPOOL_DIR, Spool
from pipeline.tracking.stale import end_stale_runs, process_tags
from pipeline.tracking.store import (
    experiment_id,
    explains_refusal,
    open_client,
    retry_locked,
    unreachable,
    unreachable_error,
    warn,
)


class NullTracker:
    """Tracking off, or a non-zero rank: every call does nothing."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        pass

    def log_batch_loss(self, step: int, value: float) -> None:
        pass

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        pass

    def log_datasets(self, datasets: Sequence[Mapping[str, Any]]) -> None:
        """The splits the run uses (plain data: see pipeline.tracking.datasets)."""

    def log_pytorch_model(self, model, input_example, registered_name: str | None) -> None:
        pass

    def flush(self, timeout: float = 60.0) -> bool:
        return True

    def end(self, status: str) -> None:
        pass


class RunTracker(NullTracker):
    """One MLflow run.

    With an outbox (training), metrics go to the spool and its sender process and never wait for
    the store. Without one (evaluate, export: a handful of metrics), each call writes directly.
    Every direct write is retried while another process holds the SQLite store's lock.
    """

    def __init__(self, client, run_id: str, destination: Destination, outbox: Outbox | None = None):
        self.client = client
        self.run_id = run_id
        self.destination = destination
        self.outbox = outbox

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), 100):
            retry_locked(self.client.log_batch, self.run_id, params=items[start : start + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        run_tags = [RunTag(k, str(v)) for k, v in tags.items()]
        retry_locked(self.client.log_batch, self.run_id, tags=run_tags)

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        if self.outbox is not None:
            # Written at once, with the batch losses before it: an epoch's end is a pause in
            # training (validation, checkpoints) that should find nothing in the trainer.
            self.outbox.put(key, step, value, at_once=True)
        else:
            retry_locked(self.client.log_metric, self.run_id, key, value, step=step)

    def log_batch_loss(self, step: int, value: float) -> None:
        if self.outbox is not None:
            self.outbox.put("train_loss", step, value)
        else:
            self.log_metric("train_loss", value, step)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every point logged so far is in the store; False if that did not happen."""
        return self.outbox is None or self.outbox.wait_sent(timeout)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        if self.outbox is not None and (reason := unreachable(self.destination.tracking_uri)):
            # Training's outputs are written already; losing the store must not fail the stage.
            warn(f"artifact {path} not logged: tracking server unreachable ({reason})")
            return
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_datasets(self, datasets: Sequence[Mapping[str, Any]]) -> None:
        retry_locked(self.client.log_inputs, self.run_id, datasets=dataset_inputs(datasets))

    def log_pytorch_model(self, model, input_example, registered_name: str | None) -> None:
        models.log_model(self.client, self.run_id, model, input_example, registered_name)

    def end(self, status: str) -> None:
        """Set the run's final status and deliver every point (the sender drains the spool)."""
        if self.outbox is None:
            retry_locked(self.client.set_terminated, self.run_id, status=status)
            return
        # The sender sends the last points while this process sets the status: MLflow takes
        # points into a finished run, and end() returns only once both are done.
        self.outbox.finish()
        reason = unreachable(self.destination.tracking_uri)
        if reason is None:
            retry_locked(self.client.set_terminated, self.run_id, status=status)
        delivered = self.outbox.delivered()
        kept = f"its unsent metric points are kept in {self.outbox.spool.points}"
        if reason is not None:
            self.outbox.spool.keep_status(status)  # for replay to set
            warn(
                f"tracking server unreachable ({reason}): run {self.run_id} is not marked {status}"
                f"{'' if delivered else ' and ' + kept}; once the server is back, "
                "`python -m pipeline.tracking replay` does it"
            )
        elif not delivered:
            warn(f"run {self.run_id}: {kept}; `python -m pipeline.tracking replay` sends them")


@explains_refusal
def start_run(params: dict[str, Any], tags: dict[str, str], run_name: str | None = None):
    """Open the one run of a training: params, tags and the run's name, status RUNNING.

    An unreachable tracking server is an InputError here, before any training starts.
    """
    if not tracking_enabled():
        return NullTracker()
    root = repo_root()
    dest = destination(root)
    if reason := unreachable(dest.tracking_uri):
        raise unreachable_error(dest.tracking_uri, reason)
    outbox = Outbox(dest.tracking_uri)  # its sender gets ready while this process opens the run
    try:
        client = open_client(dest)
        experiment = experiment_id(client, dest)
        end_stale_runs(client, experiment)
        run = retry_locked(
            client.create_run,
            experiment,
            run_name=run_name or os.environ.get("DVC_EXP_NAME") or None,
            # The code that runs: in a queued experiment, the copy's commit and changed params.
            tags={**git_tags(Path.cwd()), **dvc_tags(), **process_tags(), **tags},
        )
        tracker = RunTracker(client, run.info.run_id, dest)
        tracker.log_params(params)
        outbox.attach(Spool.create(root / SPOOL_DIR, run.info.run_id, dest.tracking_uri))
    except BaseException:
        outbox.close()
        raise
    tracker.outbox = outbox
    return tracker


def recorded_run_id(train_metrics: Path | str) -> str | None:
    """The run that train opened, as recorded in metrics/train.json (null: tracking was off)."""
    from pipeline.errors import InputError

    path = Path(train_metrics)
    try:
        return json.loads(path.read_text()).get("mlflow_run_id")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; run `dvc repro train` first") from None
    except (ValueError, AttributeError):
        raise InputError(f"{path}: not JSON with mlflow_run_id; rerun the train stage") from None


@explains_refusal
def resume_run(run_id: str | None, stream: bool = False):
    """Reopen the training's run so evaluate and export log into it.

    `stream`: per-batch metrics go through a spool and sender as in start_run (DDP's rank 0
    training in the run its launcher opened).
    """
    if not tracking_enabled() or not run_id:
        return NullTracker()
    dest = destination()
    client = open_client(dest)
    tracker = RunTracker(client, run_id, dest)
    # This process holds the run now: a training starting meanwhile must not find it stale.
    tracker.set_tags(process_tags())
    retry_locked(client.update_run, run_id, status="RUNNING")
    if stream:
        tracker.outbox = Outbox(dest.tracking_uri)
        tracker.outbox.attach(Spool.create(repo_root() / SPOOL_DIR, run_id, dest.tracking_uri))
    return tracker


@contextlib.contextmanager
def run_status(tracker: NullTracker) -> Iterator[NullTracker]:
    """End the run FINISHED, FAILED on an exception, KILLED on SIGINT/SIGTERM; never RUNNING."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield tracker
    except KeyboardInterrupt:
        _end_quietly(tracker, "KILLED")
        raise
    except BaseException:
        _end_quietly(tracker, "FAILED")
        raise
    else:
        tracker.end("FINISHED")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _end_quietly(tracker: NullTracker, status: str) -> None:
    # Ending the run must not hide the original error; the status is best effort here.
    with contextlib.suppress(Exception):
        tracker.end(status)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(f"signal {signum}")


def run_page(run_id: str, ui: str) -> str | None:
    """The run's page in the MLflow UI at `ui`; None when the store does not know the run."""
    from mlflow.exceptions import MlflowException

    if not tracking_enabled():
        return None
    try:
        experiment_id = open_client(destination()).get_run(run_id).info.experiment_id
    except MlflowException:
        return None
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


# ---- the spool: a run's metric points on disk, and the process that sends them --------------

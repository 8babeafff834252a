"""Everything MLflow: where to track, the run's lifecycle and status, tags, buffered metrics.

The only module that imports mlflow. Stages get a tracker object (a real one, or a null one when
tracking is off or the process is not rank 0) and never branch on tracking themselves.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_EXPERIMENT = "mlp-pipeline"
# MLflow accepts at most 1000 metrics in one log_batch call.
BATCH_LIMIT = 1000


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into an exception so that runs end KILLED and files stay whole."""


def tracking_enabled() -> bool:
    return os.environ.get("PIPELINE_TRACKING", "1") != "0"


def repo_root() -> Path:
    """The original repository: DVC_ROOT under DVC (queued runs work in a temporary copy)."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    top = _git("rev-parse", "--show-toplevel", cwd=Path.cwd())
    return Path(top).resolve() if top else Path.cwd().resolve()


@dataclass(frozen=True)
class Destination:
    tracking_uri: str
    experiment_name: str
    # Only set for the embedded store: an absolute path, or artifacts would land in the copy
    # that DVC runs queued experiments in.
    artifact_location: str | None


def destination(root: Path | None = None) -> Destination:
    """Decide "embedded default or not" before mlflow.set_tracking_uri() sets the variable."""
    root = root or repo_root()
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return Destination(uri, name, None)
    return Destination(f"sqlite:///{root / 'mlflow.db'}", name, (root / "mlartifacts").as_uri())


def git_tags(root: Path) -> dict[str, str]:
    commit = _git("rev-parse", "HEAD", cwd=root)
    if not commit:
        return {}
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", cwd=root))
    return {"mlflow.source.git.commit": commit, "git.dirty": str(dirty).lower()}


def dvc_tags() -> dict[str, str]:
    names = {"DVC_EXP_NAME": "dvc.exp_name", "DVC_EXP_BASELINE_REV": "dvc.baseline_rev"}
    return {tag: os.environ[var] for var, tag in names.items() if os.environ.get(var)}


def _git(*args: str, cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


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

    def log_pytorch_model(self, model, input_example, registered_name: str | None) -> None:
        pass

    def flush(self) -> None:
        pass

    def end(self, status: str) -> None:
        pass


class RunTracker(NullTracker):
    """One MLflow run; per-batch losses are buffered and sent in chunks."""

    def __init__(self, client, run_id: str, destination: Destination):
        self.client = client
        self.run_id = run_id
        self.destination = destination
        self._pending: list = []

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.client.log_metric(self.run_id, key, value, step=step)

    def log_batch_loss(self, step: int, value: float) -> None:
        from mlflow.entities import Metric

        self._pending.append(Metric("train_loss", value, int(time.time() * 1000), step))
        if len(self._pending) >= BATCH_LIMIT:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            chunk, self._pending = self._pending[:BATCH_LIMIT], self._pending[BATCH_LIMIT:]
            self.client.log_batch(self.run_id, metrics=chunk, synchronous=True)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_pytorch_model(self, model, input_example, registered_name: str | None) -> None:
        import mlflow
        import mlflow.pytorch
        from mlflow.models import infer_signature

        # One model per run: export rerunning against a training DVC restored from its run cache
        # (same run, same checkpoint) reuses the model it logged instead of adding a duplicate.
        if logged := _logged_model(self.client, self.run_id):
            _register_once(self.client, logged, registered_name)
            return
        # pyfunc serves the module's forward(): logits, one column per class.
        example = input_example.numpy()
        signature = infer_signature(example, _logits(model, input_example))
        with mlflow.start_run(run_id=self.run_id, nested=False, log_system_metrics=False):
            mlflow.pytorch.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example,
                registered_model_name=registered_name,
                # Listing them skips MLflow's slow requirement inference (a model reload in a
                # subprocess) and its warning about the "+cpu" local version label.
                pip_requirements=_requirements(),
            )

    def end(self, status: str) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status=status)


def _logged_model(client, run_id: str):
    """The run's complete model named "model", if export logged one before."""
    from mlflow.entities import LoggedModelStatus

    experiment_id = client.get_run(run_id).info.experiment_id
    query = f"source_run_id = '{run_id}' AND name = 'model'"
    found = client.search_logged_models([experiment_id], filter_string=query)
    return next((m for m in found if m.status == LoggedModelStatus.READY), None)


def _register_once(client, logged, registered_name: str | None) -> None:
    import mlflow

    if not registered_name:
        return
    query = f"name = '{registered_name}' AND run_id = '{logged.source_run_id}'"
    if not client.search_model_versions(query):
        mlflow.register_model(logged.model_uri, registered_name)


def _logits(model, features):
    import torch

    with torch.no_grad():
        return model(features).numpy()


def _client(dest: Destination):
    import mlflow

    mlflow.set_tracking_uri(dest.tracking_uri)
    return mlflow.MlflowClient(dest.tracking_uri)


def _experiment_id(client, dest: Destination) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(dest.experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(
            dest.experiment_name, artifact_location=dest.artifact_location
        )
    except MlflowException:
        # Another process created it between our lookup and our create.
        return client.get_experiment_by_name(dest.experiment_name).experiment_id


def _explains_refusal(open_run):
    """A server that refuses the credentials stops the stage with one line, not a traceback."""

    @functools.wraps(open_run)
    def wrapper(*args, **kwargs):
        try:
            return open_run(*args, **kwargs)
        except Exception as exc:
            message = _refusal(exc)
            if message is None:
                raise
            from pipeline.errors import InputError

            raise InputError(message) from None

    return wrapper


def _refusal(exc: Exception) -> str | None:
    """The one line for a 401 or 403 from the tracking server; None for any other error."""
    from mlflow.exceptions import MlflowException

    status = exc.get_http_status_code() if isinstance(exc, MlflowException) else None
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if status == 401:
        sent = f"user {user!r}" if user else "no MLFLOW_TRACKING_USERNAME set"
        return (
            f"MLFLOW_TRACKING_URI={uri}: the server refused the credentials (401, {sent}); "
            "expected MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD of an account there"
        )
    if status == 403:
        return (
            f"MLFLOW_TRACKING_URI={uri}: user {user!r} may not write to this experiment (403); "
            "expected EDIT permission on it, which the server's admin grants"
        )
    return None


@_explains_refusal
def start_run(params: dict[str, Any], tags: dict[str, str], run_name: str | None = None):
    """Open the one run of a training: params, tags and the run's name, status RUNNING."""
    if not tracking_enabled():
        return NullTracker()
    root = repo_root()
    dest = destination(root)
    client = _client(dest)
    experiment_id = _experiment_id(client, dest)
    end_stale_runs(client, experiment_id)
    run = client.create_run(
        experiment_id,
        run_name=run_name or os.environ.get("DVC_EXP_NAME") or None,
        # The code that runs: in a queued experiment, the copy's commit and its changed params.
        tags={**git_tags(Path.cwd()), **dvc_tags(), **process_tags(), **tags},
    )
    tracker = RunTracker(client, run.info.run_id, dest)
    tracker.log_params(params)
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


@_explains_refusal
def resume_run(run_id: str | None):
    """Reopen the training's run so evaluate and export log into it."""
    if not tracking_enabled() or not run_id:
        return NullTracker()
    dest = destination()
    client = _client(dest)
    tracker = RunTracker(client, run_id, dest)
    # This process holds the run now: a training starting meanwhile must not find it stale.
    tracker.set_tags(process_tags())
    client.update_run(run_id, status="RUNNING")
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


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in ("torch", "numpy")]


# Runs left RUNNING by a dead process. A run records the process that holds it (train's, then
# evaluate's and export's while they log into it); a RUNNING run whose process is gone from
# this host was killed without a chance to end it (SIGKILL, OOM killer, power cut).


def process_tags() -> dict[str, str]:
    pid = os.getpid()
    return {
        "process.host": socket.gethostname(),
        "process.pid": str(pid),
        "process.started": process_start(pid),
    }


def process_start(pid: int) -> str:
    """What tells a process from a later one given the same pid; constant while it lives.

    On Linux the boot id and the start tick from /proc: psutil's create_time() is derived from
    the wall clock and moves when the clock is set, which would make a live run look stale.
    """
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        start_tick = stat.read_text().rsplit(")", 1)[1].split()[19]  # field 22, after comm
        boot = Path("/proc/sys/kernel/random/boot_id")
        return f"{boot.read_text().strip() if boot.exists() else ''}/{start_tick}"
    import psutil

    return repr(psutil.Process(pid).create_time())


def end_stale_runs(client, experiment_id: str) -> list[str]:
    """End KILLED the RUNNING runs whose process on this host is gone; returns their ids.

    Runs of other hosts, and runs without process tags, are left alone: nothing here can tell.
    Best effort: a store that cannot be searched now must not stop a training.
    """
    from mlflow.exceptions import MlflowException

    host = socket.gethostname()
    query = f"attributes.status = 'RUNNING' and tags.`process.host` = '{host}'"
    try:
        running = client.search_runs([experiment_id], filter_string=query, max_results=1000)
        stale = [run.info.run_id for run in running if not _process_alive(run.data.tags)]
        for run_id in stale:
            client.set_terminated(run_id, status="KILLED")
    except MlflowException as exc:
        print(f"warning: could not look for stale runs: {exc}", file=sys.stderr)
        return []
    for run_id in stale:
        print(f"marked run {run_id} KILLED: its process is gone", file=sys.stderr)
    return stale


def _process_alive(tags: dict[str, str]) -> bool:
    import psutil

    try:
        pid, started = int(tags["process.pid"]), tags["process.started"]
    except (KeyError, ValueError):
        return True
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return False
        return process_start(pid) == started
    except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
        return False
    except (psutil.Error, OSError):
        return True


def run_page(run_id: str, ui: str) -> str | None:
    """The run's page in the MLflow UI at `ui`; None when the store does not know the run."""
    from mlflow.exceptions import MlflowException

    if not tracking_enabled():
        return None
    try:
        experiment_id = _client(destination()).get_run(run_id).info.experiment_id
    except MlflowException:
        return None
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

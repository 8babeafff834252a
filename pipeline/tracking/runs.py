"""A run's lifecycle: open it (or reopen the training's), log into it, end it with the right
status. Stages get a tracker (a real one, or a null one when tracking is off or the process is
not rank 0) and never branch on tracking themselves."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.process.signals import sigterm_raises
from pipeline.tracking.agent.client import open_streaming_run, prepare, take_agent
from pipeline.tracking.destination import (
    Destination,
    configuration_tags,
    destination,
    repo_root,
    source_tags,
    tracking_enabled,
)
from pipeline.tracking.store.access import (
    unreachable,
    unreachable_error,
)
from pipeline.tracking.store.check import check_store
from pipeline.tracking.store.stale import process_tags
from pipeline.tracking.study import study_link_tags
from pipeline.tracking.system_metrics import system_metrics_enabled


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

    def log_model(self, state_path: Path, example_rows, registered_name: str | None) -> None:
        pass

    def flush(self, timeout: float = 60.0) -> bool:
        return True

    def end(self, status: str) -> None:
        pass


def start_run(
    params: dict[str, Any],
    tags: dict[str, str],
    run_name: str | None = None,
    system_metrics: bool = True,
    meanwhile: Callable[[], None] | None = None,
):
    """Open the one run of a training: params, tags and the run's name, status RUNNING.

    The tracking agent (a process of its own) opens it and takes its metrics; an unreachable
    tracking server or refused credentials are an InputError here, before any training starts.
    `system_metrics`: the agent samples CPU, memory and GPU over the run. `meanwhile`: the
    caller's own work, done while the agent opens the run instead of after it (always done,
    tracked or not).
    """
    if not tracking_enabled():
        if meanwhile:
            meanwhile()
        return NullTracker()
    message = {
        "op": "start",
        "params": {key: str(value) for key, value in params.items()},
        # A study's trial reproduced with `dvc exp run` links back to it (study_link_tags).
        "tags": {
            **source_tags(),
            **study_link_tags(),
            **process_tags(),
            **configuration_tags(params),
            **tags,
        },
        "run_name": run_name,
        "system_metrics": system_metrics and system_metrics_enabled(),
    }
    return _open_through_agent(message, meanwhile)


def _open_through_agent(message: dict[str, Any], meanwhile: Callable[[], None] | None = None):
    """`start` or `resume`, refused here first if the store is bad, then sent to the agent.

    `meanwhile` runs while the agent opens the run; if it fails, the run (open by then) ends
    FAILED, or KILLED on Ctrl-C/SIGTERM, and its error is the one raised.
    """
    root = repo_root()
    _refuse_a_bad_store(destination(root))
    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            with sigterm_raises():
                meanwhile()
        except BaseException as exc:
            failures.append(exc)

    try:
        tracker = open_streaming_run(take_agent(root), message, guarded if meanwhile else None)
    except BaseException:
        if failures:
            raise failures[0] from None
        raise
    if failures:
        with run_status(tracker):
            raise failures[0]
    return tracker


def _refuse_a_bad_store(dest: Destination) -> None:
    """A store MLflow cannot open, or a server that does not answer: one line, before training."""
    check_store(dest.tracking_uri)
    if reason := unreachable(dest.tracking_uri):
        raise unreachable_error(dest.tracking_uri, reason)


def prepare_tracking() -> None:
    """Start the tracking agent now when this process will track: its start-up (importing MLflow,
    opening the store) then overlaps the caller's (importing torch) instead of following it.
    A store the agent could not open is refused first, before anything starts."""
    if tracking_enabled():
        root = repo_root()
        check_store(destination(root).tracking_uri)
        prepare(root)


def recorded_run_id(train_metrics: Path | str) -> str | None:
    """The run that train opened, as recorded in metrics/train.json (null: tracking was off)."""
    from pipeline.process.errors import InputError

    path = Path(train_metrics)
    try:
        return json.loads(path.read_text()).get("mlflow_run_id")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; run `dvc repro train` first") from None
    except (ValueError, AttributeError):
        raise InputError(f"{path}: not JSON with mlflow_run_id; rerun the train stage") from None


def resume_run(
    run_id: str | None,
    system_metrics: bool = False,
    meanwhile: Callable[[], None] | None = None,
):
    """Reopen the training's run so that evaluate and export log into it (and DDP's rank 0
    trains in the run its launcher opened), through the tracking agent as start_run does, with
    this node's system metrics if `system_metrics`. Export's model is logged by the agent too:
    no stage imports MLflow. `meanwhile`: the caller's work, done while the agent reopens the
    run (always done, tracked or not).
    """
    if not tracking_enabled() or not run_id:
        if meanwhile:
            meanwhile()
        return NullTracker()
    message = {
        "op": "resume",
        "run_id": run_id,
        "tags": process_tags(),
        "system_metrics": system_metrics and system_metrics_enabled(),
        "node": socket.gethostname(),
    }
    return _open_through_agent(message, meanwhile)


@contextlib.contextmanager
def run_status(tracker: NullTracker) -> Iterator[NullTracker]:
    """End the run FINISHED, FAILED on an exception, KILLED on SIGINT/SIGTERM; never RUNNING."""
    with sigterm_raises(), _ending(tracker):
        yield tracker


@contextlib.contextmanager
def _ending(tracker: NullTracker) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        _end_quietly(tracker, "KILLED")
        raise
    except BaseException:
        _end_quietly(tracker, "FAILED")
        raise
    else:
        tracker.end("FINISHED")


def _end_quietly(tracker: NullTracker, status: str) -> None:
    # Ending the run must not hide the original error; the status is best effort here.
    with contextlib.suppress(Exception):
        tracker.end(status)

"""Everything MLflow: where to track, the run's lifecycle and status, tags, per-batch metrics.

The only module that imports mlflow. Stages get a tracker object (a real one, or a null one when
tracking is off or the process is not rank 0) and never branch on tracking themselves.

Per-batch metrics never wait for the store. MLflow writes each point through SQLAlchemy's ORM
(about 75 us of Python per point plus about 7 ms per log_batch call; about 10 ms per log_metric
transaction); done inside the training process, that competes with training for the GIL and the
core. So a training's tracker appends each point to a spool file under
`<repo root>/.mlflow-spool/` (written every 16 points and at every other metric, such as an
epoch's loss; from then on it outlives the trainer) and a sender process of its own
(`python -m pipeline.tracking send`: its own interpreter, GIL and core) streams the file into
the run with log_batch while training runs. On the way out (success, exception or signal) the
sender drains the spool while the tracker ends the run FINISHED/FAILED/KILLED, and end()
returns once both are done. If the store cannot be reached, the points stay in the spool until
`python -m pipeline.tracking replay` sends them; if the trainer dies outright, its sender still
sends what was written (a SIGKILL mid-epoch loses at most the last 15 batch losses).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_EXPERIMENT = "mlp-pipeline"
# MLflow accepts at most 1000 metrics in one log_batch call.
BATCH_LIMIT = 1000
# Metric points a training could not send yet, per run, under the repository root.
SPOOL_DIR = ".mlflow-spool"
# The trainer writes points to the spool in bunches of this many (a system call per point slows
# training by more than the point costs); other metrics and the run's end write at once.
APPEND_BUNCH = 16
# The sender sends what has arrived this often (and at once when training ends): short, so that
# little is left to send when training ends, at the cost of more, smaller log_batch calls.
SEND_INTERVAL_S = 0.03
# A write that finds the SQLite store locked by another process (DVC queue workers) is retried
# with a growing, jittered pause; writers hold the lock for milliseconds, so this is generous.
LOCK_RETRY_S = (0.05, 1.0)
LOCK_PATIENCE_S = 120.0
# After training, how long the sender keeps retrying a store that does not answer before it
# leaves the rest of the points in the spool for `replay`.
DRAIN_PATIENCE_S = 10.0
# A tracking server has to accept a TCP connection within this long.
CONNECT_TIMEOUT_S = 5.0
# The sender's exit status when it kept points in the spool.
KEPT_EXIT = 3


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
            _retry_locked(self.client.log_batch, self.run_id, params=items[start : start + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        run_tags = [RunTag(k, str(v)) for k, v in tags.items()]
        _retry_locked(self.client.log_batch, self.run_id, tags=run_tags)

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        if self.outbox is not None:
            # Written at once, with the batch losses before it: an epoch's end is a pause in
            # training (validation, checkpoints) that should find nothing in the trainer.
            self.outbox.put(key, step, value, at_once=True)
        else:
            _retry_locked(self.client.log_metric, self.run_id, key, value, step=step)

    def log_batch_loss(self, step: int, value: float) -> None:
        if self.outbox is not None:
            self.outbox.put("train_loss", step, value)
        else:
            self.log_metric("train_loss", value, step)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every point logged so far is in the store; False if that did not happen."""
        return self.outbox is None or self.outbox.wait_sent(timeout)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        if self.outbox is not None and (reason := _unreachable(self.destination.tracking_uri)):
            # Training's outputs are written already; losing the store must not fail the stage.
            _warn(f"artifact {path} not logged: tracking server unreachable ({reason})")
            return
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
        """Set the run's final status and deliver every point (the sender drains the spool)."""
        if self.outbox is None:
            _retry_locked(self.client.set_terminated, self.run_id, status=status)
            return
        # The sender sends the last points while this process sets the status: MLflow takes
        # points into a finished run, and end() returns only once both are done.
        self.outbox.finish()
        reason = _unreachable(self.destination.tracking_uri)
        if reason is None:
            _retry_locked(self.client.set_terminated, self.run_id, status=status)
        delivered = self.outbox.delivered()
        kept = f"its unsent metric points are kept in {self.outbox.spool.points}"
        if reason is not None:
            self.outbox.spool.keep_status(status)  # for replay to set
            _warn(
                f"tracking server unreachable ({reason}): run {self.run_id} is not marked {status}"
                f"{'' if delivered else ' and ' + kept}; once the server is back, "
                "`python -m pipeline.tracking replay` does it"
            )
        elif not delivered:
            _warn(f"run {self.run_id}: {kept}; `python -m pipeline.tracking replay` sends them")


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


# ---- the store: reachability, first creation, lock retries ----------------------------------


def _client(dest: Destination):
    """A client whose store answers and exists."""
    import mlflow

    if reason := _unreachable(dest.tracking_uri):
        raise _unreachable_error(dest.tracking_uri, reason)
    mlflow.set_tracking_uri(dest.tracking_uri)
    return _store_client(dest.tracking_uri)


def _store_client(tracking_uri: str):
    import mlflow

    # Making the client opens the store, which creates the schema of a fresh SQLite file. Two
    # processes doing that at once (DVC queue workers, a trainer and its sender) race MLflow's
    # migration and one fails: the first creates it while the others wait, then find it there.
    with _store_creation_lock(tracking_uri):
        client = mlflow.MlflowClient(tracking_uri)
        _retry_locked(client.search_experiments, max_results=1)
    return client


@contextlib.contextmanager
def _store_creation_lock(tracking_uri: str) -> Iterator[None]:
    path = _sqlite_path(tracking_uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}-init.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or len(tracking_uri) == len(prefix):
        return None
    return Path(tracking_uri[len(prefix) :].split("?")[0])


def _retry_locked(call: Callable, *args, **kwargs):
    """call(); while another process holds the SQLite store's write lock, wait and call again."""
    pause, deadline = LOCK_RETRY_S[0], time.monotonic() + LOCK_PATIENCE_S
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not _is_locked(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(2 * pause, LOCK_RETRY_S[1])


def _is_locked(exc: BaseException | None) -> bool:
    # MLflow wraps SQLAlchemy's OperationalError; look through the chain for SQLite's message.
    while exc is not None:
        if "database is locked" in str(exc) or "database table is locked" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _unreachable(tracking_uri: str) -> str | None:
    """Why a tracking server does not accept connections, or None (also for non-HTTP stores).

    MLflow's client retries a refused connection for minutes; a plain TCP connect answers now.
    """
    parts = urllib.parse.urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return None


def _unreachable_error(tracking_uri: str, reason: str):
    from pipeline.errors import InputError

    parts = urllib.parse.urlsplit(tracking_uri)
    if parts.password:  # never print credentials
        tracking_uri = tracking_uri.replace(f":{parts.password}@", ":***@")
    return InputError(
        f"MLFLOW_TRACKING_URI={tracking_uri}: tracking server unreachable ({reason}); "
        "start the server, or unset MLFLOW_TRACKING_URI to track into the embedded store"
    )


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _experiment_id(client, dest: Destination) -> str:
    from mlflow.exceptions import MlflowException

    experiment = _retry_locked(client.get_experiment_by_name, dest.experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return _retry_locked(
            client.create_experiment, dest.experiment_name, artifact_location=dest.artifact_location
        )
    except MlflowException:
        # Another process created it between our lookup and our create.
        experiment = _retry_locked(client.get_experiment_by_name, dest.experiment_name)
        if experiment is None:
            raise
        return experiment.experiment_id


# ---- the run's lifecycle --------------------------------------------------------------------


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
    """Open the one run of a training: params, tags and the run's name, status RUNNING.

    An unreachable tracking server is an InputError here, before any training starts.
    """
    if not tracking_enabled():
        return NullTracker()
    root = repo_root()
    dest = destination(root)
    if reason := _unreachable(dest.tracking_uri):
        raise _unreachable_error(dest.tracking_uri, reason)
    outbox = Outbox(dest.tracking_uri)  # its sender gets ready while this process opens the run
    try:
        client = _client(dest)
        experiment_id = _experiment_id(client, dest)
        end_stale_runs(client, experiment_id)
        run = _retry_locked(
            client.create_run,
            experiment_id,
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


@_explains_refusal
def resume_run(run_id: str | None, stream: bool = False):
    """Reopen the training's run so evaluate and export log into it.

    `stream`: per-batch metrics go through a spool and sender as in start_run (DDP's rank 0
    training in the run its launcher opened).
    """
    if not tracking_enabled() or not run_id:
        return NullTracker()
    dest = destination()
    client = _client(dest)
    tracker = RunTracker(client, run_id, dest)
    # This process holds the run now: a training starting meanwhile must not find it stale.
    tracker.set_tags(process_tags())
    _retry_locked(client.update_run, run_id, status="RUNNING")
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


# ---- the spool: a run's metric points on disk, and the process that sends them --------------


class Spool:
    """A run's metric points in an append-only file, and how far they have been sent.

    <run_id>.points  one line per point: key, step, timestamp (ms), value, tab-separated
    <run_id>.sent    the byte offset up to which the points are in the store
    <run_id>.json    the run and its store, and the final status if the store could not be told
    """

    def __init__(self, meta: Path):
        self.meta = meta
        self.points = meta.with_suffix(".points")
        self.sent = meta.with_suffix(".sent")
        info = json.loads(meta.read_text())
        self.run_id, self.tracking_uri = info["run_id"], info["tracking_uri"]
        self.status: str | None = info.get("status")
        self.written = 0  # bytes the trainer has handed to the system
        self._fd: int | None = None  # the trainer's, to append
        self._bunch: list[tuple[str, int, int, float]] = []
        self._sent_fd: int | None = None  # the sender's, to record progress

    @classmethod
    def create(cls, directory: Path, run_id: str, tracking_uri: str) -> Spool:
        directory.mkdir(parents=True, exist_ok=True)
        meta = directory / f"{run_id}.json"
        _write_atomic(meta, json.dumps({"run_id": run_id, "tracking_uri": tracking_uri}))
        return cls(meta)

    def open(self) -> None:
        """Start appending (the trainer's side)."""
        self._fd = os.open(self.points, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.written = os.fstat(self._fd).st_size

    def append(self, key: str, step: int, value: float) -> None:
        self._bunch.append((key, step, time.time_ns(), value))
        if len(self._bunch) >= APPEND_BUNCH:
            self.flush()

    def flush(self) -> None:
        """Hand the bunch to the system: from then on it outlives the trainer, even a SIGKILL."""
        if self._bunch:
            lines = [
                f"{key}\t{int(step)}\t{ns // 1_000_000}\t{float(value)!r}\n"
                for key, step, ns, value in self._bunch
            ]
            self.written += os.write(self._fd, "".join(lines).encode())
            self._bunch.clear()

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None

    def keep_status(self, status: str) -> None:
        """Remember the run's final status for `replay`: the store did not answer."""
        self.status = status
        info = {"run_id": self.run_id, "tracking_uri": self.tracking_uri, "status": status}
        _write_atomic(self.meta, json.dumps(info))

    def sent_offset(self) -> int:
        try:
            return int(self.sent.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def mark_sent(self, offset: int) -> None:
        # Rewritten in place, at a fixed width (a write this small lands whole): renaming a new
        # file tens of times a second would keep the file system's journal busy during training.
        if self._sent_fd is None:
            self._sent_fd = os.open(self.sent, os.O_WRONLY | os.O_CREAT, 0o644)
        os.pwrite(self._sent_fd, f"{offset:020d}\n".encode(), 0)

    def read(self, offset: int, limit: int) -> tuple[list[tuple[str, int, int, float]], int]:
        """Up to `limit` whole points from `offset`, and the offset after them."""
        points: list[tuple[str, int, int, float]] = []
        if not self.points.exists():  # nothing logged yet
            return points, offset
        with open(self.points, "rb") as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # the rest of it is still being written
                offset += len(line)
                key, step, timestamp, value = line.decode().rstrip("\n").split("\t")
                points.append((key, int(step), int(timestamp), float(value)))
                if len(points) == limit:
                    break
        return points, offset

    @contextlib.contextmanager
    def sending(self) -> Iterator[bool]:
        """Held by the one process that sends this spool; False if another one holds it."""
        with open(self.points, "ab") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    def remove(self) -> None:
        if self._sent_fd is not None:
            os.close(self._sent_fd)
            self._sent_fd = None
        for path in (self.points, self.sent, self.meta):
            path.unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


class Outbox:
    """The trainer's side: a point costs a list append (the spool writes them in bunches); the
    sender process ships them.

    The sender starts before the run is opened, so that its own start-up (importing MLflow and
    opening the store: seconds) overlaps the trainer's, and training starts with it ready.
    """

    def __init__(self, tracking_uri: str):
        self.spool: Spool | None = None
        self.sender = subprocess.Popen(
            [sys.executable, "-m", "pipeline.tracking", "send", tracking_uri],
            # stdin: the spool's name, then its end of file says that training is over.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # "ready", then "sent" or "kept"
            env=_sender_environment(),
            # Out of the trainer's process group: Ctrl-C stops training, not the sender, which
            # then delivers the last points before the run is marked KILLED.
            start_new_session=True,
        )

    def attach(self, spool: Spool, ready_timeout: float = 30.0) -> None:
        """Hand the run's spool to the sender, and give it a while to be ready to send (only
        for speed: points logged before it is ready wait in the spool)."""
        self.spool = spool
        spool.open()
        self.sender.stdin.write(f"{spool.meta}\n".encode())
        self.sender.stdin.flush()
        ready, _, _ = select.select([self.sender.stdout], [], [], ready_timeout)
        if ready and not self.sender.stdout.readline():
            raise RuntimeError(
                f"the metric sender of run {spool.run_id} exited with {self.sender.wait()} "
                "before training started; see its error above"
            )

    def put(self, key: str, step: int, value: float, at_once: bool = False) -> None:
        self.spool.append(key, step, value)
        if at_once:
            self.spool.flush()

    def wait_sent(self, timeout: float) -> bool:
        self.spool.flush()
        deadline = time.monotonic() + timeout
        while self.spool.sent_offset() < self.spool.written:
            if self.sender.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> bool:
        """No more points: the sender drains the spool. True if all were sent."""
        self.finish()
        return self.delivered()

    def finish(self) -> None:
        """No more points: the sender starts sending the last ones."""
        if self.spool is not None:
            self.spool.close()
        with contextlib.suppress(OSError):
            self.sender.stdin.close()

    def delivered(self) -> bool:
        """Wait for the sender's last word: True if every point is in the store."""
        # Its last word (none if it died); its exit, tearing down MLflow, is not waited for.
        words = (line.strip() for line in self.sender.stdout)
        delivered = next((word for word in words if word in (b"sent", b"kept")), b"") == b"sent"
        threading.Thread(target=self.sender.wait, daemon=True).start()
        return delivered


def _sender_environment() -> dict[str, str]:
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [project, env.get("PYTHONPATH")]))
    # The sender retries on its own terms; MLflow's retries would hold it for minutes per request
    # against a server that went away.
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    env.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return env


class Sender:
    """Sends a spool's points from where the last sender stopped, in log_batch chunks."""

    def __init__(self, spool: Spool, no_more_points: Callable[[float], bool]):
        # no_more_points(wait): wait up to `wait` seconds; True once the trainer has finished.
        self.spool, self.no_more_points = spool, no_more_points
        self.client = None
        self.sent_points = 0

    def run(self, patience: float = DRAIN_PATIENCE_S) -> bool:
        """True when every point is in the store; False when the store failed for `patience`
        seconds after training ended (the points stay in the spool)."""
        offset, finished, failing_since, pause = self.spool.sent_offset(), False, None, 0.0
        while True:
            points, end = self.spool.read(offset, BATCH_LIMIT)
            if not points and finished:
                return True
            if points:
                try:
                    self._send(points)
                except Exception as exc:
                    failing_since = failing_since or time.monotonic()
                    if pause == 0.0:
                        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                        _warn(f"cannot send metrics of run {self.spool.run_id} yet: {first_line}")
                    if finished and time.monotonic() - failing_since > patience:
                        return False
                    pause = min(2 * pause or SEND_INTERVAL_S, 5.0)
                    finished = self._wait(pause, finished)
                    continue
                offset, failing_since, pause = end, None, 0.0
                self.spool.mark_sent(offset)
                self.sent_points += len(points)
                if len(points) == BATCH_LIMIT:
                    continue  # more are waiting
            finished = self._wait(SEND_INTERVAL_S, finished)

    def _wait(self, seconds: float, finished: bool) -> bool:
        if finished:
            time.sleep(seconds)
            return True
        return self.no_more_points(seconds)

    def _send(self, points: list[tuple[str, int, int, float]]) -> None:
        from mlflow.entities import Metric

        self.client = self.client or _store_client(self.spool.tracking_uri)
        metrics = [Metric(key, value, timestamp, step) for key, step, timestamp, value in points]
        _retry_locked(self.client.log_batch, self.spool.run_id, metrics=metrics, synchronous=True)


def _trainer_finished(wait: float) -> bool:
    """The trainer closes our stdin when it is done, or the system does when it dies."""
    ready, _, _ = select.select([sys.stdin.fileno()], [], [], wait)
    return bool(ready) and not os.read(sys.stdin.fileno(), 4096)


def send(tracking_uri: str) -> int:
    """The sender process: open the store, read the run's spool name from stdin, stream the
    spool while training runs and drain it when training ends."""
    client = None
    with contextlib.suppress(Exception):  # the send loop retries a store that does not answer
        client = _store_client(tracking_uri)
    name = b""
    while not name.endswith(b"\n"):
        byte = os.read(sys.stdin.fileno(), 1)  # unbuffered: select() watches the same pipe
        if not byte:
            return 0  # the trainer gave up before opening its run
        name += byte
    spool = Spool(Path(name.decode().strip()))
    with spool.sending() as ours:
        print("ready", flush=True)
        sender = Sender(spool, _trainer_finished)
        sender.client = client
        if not ours or not sender.run():
            print("kept", flush=True)
            return KEPT_EXIT
        spool.remove()  # before "sent": the trainer may write the spool's status next
    print("sent", flush=True)
    return 0


def replay(spool_dir: Path, tracking_uri: str | None = None) -> list[str]:
    """Send what trainings could not: every spool's points and final status. One line per run."""
    from pipeline.errors import InputError

    report = []
    for meta in sorted(spool_dir.glob("*.json")):
        spool = Spool(meta)
        spool.tracking_uri = tracking_uri or spool.tracking_uri
        with spool.sending() as ours:
            if not ours:
                report.append(f"run {spool.run_id}: its training is still sending; skipped")
                continue
            if reason := _unreachable(spool.tracking_uri):
                raise _unreachable_error(spool.tracking_uri, reason)
            sender = Sender(spool, no_more_points=lambda wait: True)
            if not sender.run():
                raise InputError(
                    f"{spool.points}: the points of run {spool.run_id} could not be sent to "
                    f"{spool.tracking_uri}; they stay there (see the warning above)"
                )
            if spool.status:
                client = sender.client or _store_client(spool.tracking_uri)
                _retry_locked(client.set_terminated, spool.run_id, status=spool.status)
            spool.remove()
        status = f", marked {spool.status}" if spool.status else ""
        report.append(f"run {spool.run_id}: {sender.sent_points} metric points sent{status}")
    return report


def main(argv: list[str] | None = None) -> int:
    from pipeline.errors import exits_cleanly

    return exits_cleanly(_main)(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tracking",
        description="Send metric points that trainings kept in .mlflow-spool/ into their runs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    replay_command = commands.add_parser("replay", help="send every spool, then delete it")
    replay_command.add_argument(
        "--spool-dir", type=Path, default=None, help="default: <repo root>/.mlflow-spool"
    )
    replay_command.add_argument(
        "--tracking-uri", default=None, help="send to this store instead of the recorded one"
    )
    send_command = commands.add_parser("send", help="(internal) a training's sender process")
    send_command.add_argument("tracking_uri")
    args = parser.parse_args(argv)
    if args.command == "send":
        code = send(args.tracking_uri)
        # The trainer waits for this exit: skip the interpreter's teardown of MLflow's modules.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    spool_dir = args.spool_dir or repo_root() / SPOOL_DIR
    lines = replay(spool_dir, args.tracking_uri) if spool_dir.is_dir() else []
    print("\n".join(lines) if lines else f"nothing to replay in {spool_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

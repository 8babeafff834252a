"""The store: is it reachable, opening it once per fresh file, retries while it is locked, and
the one-line errors for a server that refuses the credentials."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import random
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator

from pipeline.tracking.destination import Destination
from pipeline.tracking.store.urls import shown, sqlite_path

# A write that finds the SQLite store locked by another process (DVC queue workers) is retried
# with a growing, jittered pause; writers hold the lock for milliseconds, so this is generous.
LOCK_RETRY_S = (0.05, 1.0)
LOCK_PATIENCE_S = 120.0
# A tracking server has to accept a TCP connection within this long.
CONNECT_TIMEOUT_S = 5.0


def open_client(dest: Destination):
    """A client whose store answers and exists."""
    import mlflow

    if reason := unreachable(dest.tracking_uri):
        raise unreachable_error(dest.tracking_uri, reason)
    mlflow.set_tracking_uri(dest.tracking_uri)
    return store_client(dest.tracking_uri)


def store_client(tracking_uri: str):
    import mlflow

    # Making the client opens the store, which creates the schema of a fresh SQLite file. Two
    # processes doing that at once (DVC queue workers, a trainer and its sender) race MLflow's
    # migration and one fails: the first creates it while the others wait, then find it there.
    with _store_creation_lock(tracking_uri):
        client = retry_locked(mlflow.MlflowClient, tracking_uri)
        retry_locked(client.search_experiments, max_results=1)
    return client


@contextlib.contextmanager
def _store_creation_lock(tracking_uri: str) -> Iterator[None]:
    path = sqlite_path(tracking_uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}-init.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def retry_locked(call: Callable, *args, **kwargs):
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


def unreachable(tracking_uri: str) -> str | None:
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


def unreachable_error(tracking_uri: str, reason: str):
    from pipeline.process.errors import InputError

    return InputError(
        f"MLFLOW_TRACKING_URI={shown(tracking_uri)}: tracking server unreachable ({reason}); "
        "start the server, or unset MLFLOW_TRACKING_URI to track into the embedded store"
    )


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def experiment_id(client, dest: Destination) -> str:
    from mlflow.exceptions import MlflowException

    experiment = retry_locked(client.get_experiment_by_name, dest.experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return retry_locked(
            client.create_experiment, dest.experiment_name, artifact_location=dest.artifact_location
        )
    except MlflowException:
        # Another process created it between our lookup and our create.
        experiment = retry_locked(client.get_experiment_by_name, dest.experiment_name)
        if experiment is None:
            raise
        return experiment.experiment_id


def explains_refusal(open_run):
    """A server that refuses the credentials stops the stage with one line, not a traceback."""

    @functools.wraps(open_run)
    def wrapper(*args, **kwargs):
        try:
            return open_run(*args, **kwargs)
        except Exception as exc:
            message = refusal(exc)
            if message is None:
                raise
            from pipeline.process.errors import InputError

            raise InputError(message) from None

    return wrapper


def refusal(exc: Exception) -> str | None:
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

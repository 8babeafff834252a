"""The team's tracking server: `mlflow server` on PostgreSQL, with artifacts served through it.

`make server` runs this in the foreground. Without --backend-store-uri it keeps a PostgreSQL
cluster of its own under --dir (created on first use, started and stopped with the server), so
one machine with Debian's `postgresql` package is all a team needs. PostgreSQL and MLflow listen
on 127.0.0.1 only: teammates reach the server through an SSH tunnel or a TLS reverse proxy
(docs/team.md), never as plain HTTP on the network. Ctrl-C or SIGTERM stops MLflow,
then the PostgreSQL this script started; both run under lifelines (pipeline/process/lifeline.py), so
they and their workers end with this script even when it is killed outright (SIGKILL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# Run as a script from a checkout: the pipeline package of this checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.process.lifeline import popen_tied
from pipeline.tracking.store.urls import shown
from scripts.team_postgres import (  # noqa: F401 (as_postgres_user, postgres_bin_dir: tests)
    AUTH_DB,
    LOOPBACK,
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    TRACKING_DB,
    Postgres,
    SetupError,
    as_postgres_user,
    free_port,
    local_postgres,
    postgres_bin_dir,
    with_psycopg2,
)


class Stop(Exception):
    """SIGINT or SIGTERM, turned into an exception so that every `finally` below runs."""


# ---------------------------------------------------------------------------------------------
# MLflow: the tracking server, artifacts proxied, optionally behind basic authentication


def _write_auth_config(state_dir: Path, database_uri: str, default_permission: str) -> Path:
    """basic-auth's settings; the admin's password comes from MLFLOW_AUTH_ADMIN_PASSWORD."""
    path = state_dir / "basic_auth.ini"
    path.touch(mode=0o600)  # it holds the database password
    path.write_text(
        "[mlflow]\n"
        # What a signed-in user may do with experiments that nobody granted them: READ (MLflow's
        # default) means the admin grants EDIT on the shared experiment to each teammate.
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {os.environ.get('MLFLOW_AUTH_ADMIN_USERNAME') or 'admin'}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path


def _server_env(backend_uri: str, auth_config: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    # Given as a variable, not an argument: the database password stays out of `ps`.
    env["MLFLOW_BACKEND_STORE_URI"] = backend_uri
    # The GenAI job runner is a process tree of its own that this pipeline never uses.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    if auth_config is not None:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config)
        # Only the UI's sign-up form uses it (CSRF); one server, so a key per start will do.
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    return env


def _wait_until_healthy(server: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SetupError(f"mlflow server exited with code {server.returncode}; see above")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}/health", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.5)
    raise SetupError(f"mlflow server did not answer {url}/health within {READY_TIMEOUT_S} s")


@contextlib.contextmanager
def mlflow_server(
    *,
    backend_uri: str,
    artifacts_destination: str,
    port: int,
    workers: int = 2,
    auth_config: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """`mlflow server` on 127.0.0.1:port until the block ends; yields once /health answers."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", LOOPBACK, "--port", str(port)]
    cmd += ["--workers", str(workers), "--serve-artifacts"]
    cmd += ["--artifacts-destination", artifacts_destination]
    if auth_config is not None:
        cmd += ["--app-name", "basic-auth"]
    server = popen_tied(cmd, env=_server_env(backend_uri, auth_config))
    try:
        _wait_until_healthy(server, f"http://{LOOPBACK}:{port}")
        yield server
    finally:
        # The lifeline passes SIGTERM on, then ends what mlflow leaves behind (uvicorn).
        server.stop(signal.SIGTERM, STOP_TIMEOUT_S)


# ---------------------------------------------------------------------------------------------
# The command


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=Path(".team"), help="state: PostgreSQL cluster, artifacts"
    )
    parser.add_argument("--port", type=int, default=5050, help="MLflow's port (0: any free one)")
    parser.add_argument(
        "--backend-store-uri",
        default=os.environ.get("MLFLOW_BACKEND_STORE_URI"),
        help="an existing postgresql:// database (default: a cluster under --dir)",
    )
    parser.add_argument(
        "--artifacts-destination", help="where served artifacts go (default: DIR/mlartifacts)"
    )
    parser.add_argument("--postgres-port", type=int, default=0, help="default: any free one")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--basic-auth", action="store_true", help="require MLflow sign-in")
    parser.add_argument(
        "--default-permission",
        choices=["NO_PERMISSIONS", "READ", "EDIT", "MANAGE"],
        default="READ",
        help="with --basic-auth: on experiments a user was not granted (default: READ)",
    )
    return parser.parse_args(argv)


def _stores(args: argparse.Namespace, state_dir: Path, stack: contextlib.ExitStack):
    """The tracking store's and the users' database URIs; starts the own cluster if needed."""
    if args.backend_store_uri:
        return with_psycopg2(args.backend_store_uri), f"sqlite:///{state_dir / 'basic_auth.db'}"
    postgres = stack.enter_context(local_postgres(state_dir, args.postgres_port))
    return postgres.uri(TRACKING_DB), postgres.uri(AUTH_DB)


def serve(args: argparse.Namespace) -> None:
    state_dir = args.dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        state_dir.chmod(0o711)  # the postgres account must reach its cluster inside
    artifacts = args.artifacts_destination or str(state_dir / "mlartifacts")
    port = args.port or free_port()
    with contextlib.ExitStack() as stack:
        backend, users_db = _stores(args, state_dir, stack)
        auth = None
        if args.basic_auth:
            auth = _write_auth_config(state_dir, users_db, args.default_permission)
        server = stack.enter_context(
            mlflow_server(
                backend_uri=backend,
                artifacts_destination=artifacts,
                port=port,
                workers=args.workers,
                auth_config=auth,
            )
        )
        print(f"backend store: {shown(backend)}", flush=True)
        print(f"artifacts:     {artifacts}", flush=True)
        print(f"MLflow tracking server ready: http://{LOOPBACK}:{port}", flush=True)
        print(f"  export MLFLOW_TRACKING_URI=http://{LOOPBACK}:{port}", flush=True)
        server.wait()
        raise SetupError(f"mlflow server exited with code {server.returncode}")


def _raise_stop(signum, frame) -> None:
    # Once: a second Ctrl-C must not cut the cleanup short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        serve(args)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Stop:
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

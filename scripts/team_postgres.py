"""PostgreSQL for the team server: a cluster of our own, reachable on a loopback port only.

`local_postgres(state_dir)` creates the cluster under state_dir/postgres on first use, runs
PostgreSQL in the foreground under a lifeline (pipeline/process/lifeline.py: it ends with this
process, however this process ends) and stops it (fast shutdown) when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.process.lifeline import popen_tied

LOOPBACK = "127.0.0.1"
DB_USER = "mlflow"
# The databases the team server keeps: runs and metrics, and basic-auth's users.
TRACKING_DB = "mlflow"
AUTH_DB = "mlflow_auth"
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30
# Debian's package puts the server binaries here, not on PATH.
DEBIAN_POSTGRES = Path("/usr/lib/postgresql")


class SetupError(Exception):
    """Something the server needs is missing or refused to start: one line says what."""


def postgres_bin_dir() -> Path | None:
    """Where pg_ctl and initdb live: on PATH, else the newest Debian version; None if absent."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(DEBIAN_POSTGRES.glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def as_postgres_user(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; Debian's package creates the `postgres` account.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _give_to_postgres_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise SetupError(f"{what} failed (exit {done.returncode}): {lines[-1]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str

    def uri(self, database: str) -> str:
        return with_psycopg2(
            f"postgresql://{DB_USER}:{self.password}@{LOOPBACK}:{self.port}/{database}"
        )


def with_psycopg2(uri: str) -> str:
    """Name the driver we install: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3."""
    if uri.startswith("postgresql://"):
        return "postgresql+psycopg2://" + uri.removeprefix("postgresql://")
    return uri


def _cluster_password(state_dir: Path) -> str:
    """Made once per cluster, kept next to it, readable by this account only."""
    path = state_dir / "postgres.password"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _init_cluster(bin_dir: Path, data: Path, password: str) -> None:
    data.mkdir(mode=0o700, exist_ok=True)  # left empty by a failed first try: initdb takes it
    _give_to_postgres_user(data)
    with tempfile.NamedTemporaryFile("w", prefix="pgpass-", suffix=".txt") as pwfile:
        pwfile.write(password)
        pwfile.flush()
        _give_to_postgres_user(Path(pwfile.name))
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", DB_USER]
        initdb += ["--pwfile", pwfile.name, "--auth", "scram-sha-256", "-E", "UTF8", "--no-locale"]
        _run(as_postgres_user(initdb), f"initdb {data}")


def ensure_database(server: Postgres, name: str) -> None:
    conn = _connect(server, "postgres")
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    with contextlib.closing(conn), conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')


def _connect(server: Postgres, database: str):
    try:
        import psycopg2
    except ImportError:
        raise SetupError("psycopg2 is missing: pip install -e '.[team]'") from None
    return psycopg2.connect(
        host=LOOPBACK, port=server.port, user=DB_USER, password=server.password, dbname=database
    )


def _wait_until_accepting(server: Postgres, postgres: subprocess.Popen, log: Path) -> None:
    import psycopg2

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if postgres.poll() is not None:
            raise SetupError(f"PostgreSQL exited with code {postgres.returncode} (log: {log})")
        try:
            _connect(server, "postgres").close()
            return
        except psycopg2.OperationalError:
            time.sleep(0.2)
    raise SetupError(f"PostgreSQL did not accept connections within {READY_TIMEOUT_S} s ({log})")


@contextlib.contextmanager
def local_postgres(state_dir: Path, port: int = 0) -> Iterator[Postgres]:
    """Start the cluster under state_dir/postgres (created on first use); stop it on exit.

    PostgreSQL runs in the foreground under a lifeline, not daemonized by pg_ctl: it ends with
    this process, however this process ends.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SetupError(
            "PostgreSQL is not installed (no pg_ctl on PATH or under /usr/lib/postgresql); "
            "install Debian's package (apt-get install postgresql) or pass --backend-store-uri"
        )
    data = state_dir / "postgres"
    password = _cluster_password(state_dir)
    if not (data / "PG_VERSION").exists():
        _init_cluster(bin_dir, data, password)
    server = Postgres(port or free_port(), password)
    # TCP on the loopback address only, no Unix socket (its default directory may not exist).
    cmd = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(server.port)]
    cmd += ["-c", f"listen_addresses={LOOPBACK}", "-c", "unix_socket_directories="]
    log = data / "server.log"
    with log.open("a") as out:
        postgres = popen_tied(
            cmd,
            user="postgres" if os.geteuid() == 0 else None,
            stop_signal=signal.SIGINT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_accepting(server, postgres, log)
        for name in (TRACKING_DB, AUTH_DB):
            ensure_database(server, name)
        yield server
    finally:
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, data is checkpointed.
        postgres.stop(signal.SIGINT, STOP_TIMEOUT_S)

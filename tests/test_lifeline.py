"""popen_tied: a command behaves as under Popen, and its whole tree ends with the caller."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import ROOT, clean_env, skip_without_postgres
from process_helpers import (
    in_sessions,
    kill_all,
    refuses_connections,
    start_tied_parent,
    still_running,
    tree,
    wait_until_gone,
)
from tracking_helpers import free_port, wait_for

from pipeline.process.lifeline import popen_tied

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="Linux only (prctl, /proc)")

# A tree with every way of leaving a process group: a plain child, a setsid'd one, a
# double-forked one (reparented away from its parent), and a shell that ignores SIGTERM.
TEAM_READY = re.compile(r"MLflow tracking server ready: http://127\.0\.0\.1:(\d+)")
STUBBORN_TREE = "trap '' TERM; sleep 300 & setsid sleep 301 & (sleep 302 &); wait; wait"


@pytest.mark.parametrize(
    ("code", "send"),
    [
        ("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)", None),
        ("import time; print('ready', flush=True); time.sleep(30)", signal.SIGTERM),
        ("import time; print('ready', flush=True); time.sleep(30)", signal.SIGINT),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", None),
    ],
)
def test_a_tied_command_behaves_as_under_popen(code, send):
    """Output, exit code and signals, against plain subprocess.Popen as the reference."""
    results = []
    for start in (subprocess.Popen, popen_tied):
        process = start(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if send is not None:
            assert process.stdout.readline() == "ready\n"
            process.send_signal(send)
        out, err = process.communicate(timeout=60)
        results.append((process.returncode, out, err.splitlines()[-1:]))
    assert results[1] == results[0]


def test_a_command_that_cannot_start_raises_as_popen_does(tmp_path):
    missing = str(tmp_path / "no-such-program")
    with pytest.raises(FileNotFoundError) as reference:
        subprocess.Popen([missing])
    with pytest.raises(FileNotFoundError) as tied:
        popen_tied([missing])
    assert (tied.value.errno, tied.value.filename) == (reference.value.errno, missing)


def test_wait_returns_once_what_the_command_left_behind_is_gone():
    command = "setsid sleep 300 & echo $!; read go; exit 4"
    process = popen_tied(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    left_behind = int(process.stdout.readline())
    processes = wait_for(lambda: _with_sleeps(tree(left_behind), 1), 30, "setsid sleep")
    process.stdin.close()
    assert process.wait(timeout=30) == 4
    assert still_running(processes) == set()


def test_the_whole_tree_ends_when_the_parent_is_sigkilled():
    parent = start_tied_parent(["sh", "-c", STUBBORN_TREE], grace_s=1.0)
    lifeline = int(parent.stdout.readline())
    processes = wait_for(lambda: _with_sleeps(tree(lifeline), 3), 30, "the tree to start")
    try:
        parent.kill()
        parent.wait()
        # The shell ignores SIGTERM: what ends it is the SIGKILL after the grace period.
        assert wait_until_gone(processes, timeout=30) == set()
        assert in_sessions({lifeline}) == set()
    finally:
        kill_all(processes)


def _with_sleeps(processes, count: int):
    sleeps = [p for p in processes if p.cmdline.startswith("sleep 30")]
    return processes if len(sleeps) == count else None


def test_the_tree_ends_even_when_the_lifeline_is_killed_with_its_group():
    process = popen_tied(["sh", "-c", "sleep 300 & sleep 301 & wait"])
    processes = wait_for(lambda: _with_sleeps(tree(process.pid), 2), 30, "the tree to start")
    process.kill()  # SIGKILL to the lifeline's process group: nobody left to pass anything on
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert wait_until_gone(processes, timeout=30) == set()


@pytest.mark.e2e
def test_mlflow_ui_and_its_workers_end_when_its_parent_is_sigkilled(tmp_path):
    port = free_port()
    ui = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)]
    ui += ["--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--workers", "2"]
    parent = start_tied_parent(ui)
    lifeline = int(parent.stdout.readline())
    processes = set()
    try:
        wait_for(lambda: _answers(port), 300, f"mlflow ui on port {port}")
        processes = wait_for(lambda: _with_workers(tree(lifeline), 2), 120, "2 uvicorn workers")
        parent.kill()
        parent.wait()
        started = time.monotonic()
        assert wait_until_gone(processes, timeout=60) == set()
        assert in_sessions({lifeline}) == set()  # workers restarted after the snapshot too
        assert refuses_connections(port)
        print(f"mlflow ui's {len(processes)} processes gone in {time.monotonic() - started:.1f} s")
    finally:
        parent.kill()
        kill_all(processes | tree(lifeline))


def _with_workers(processes, count: int):
    workers = [p for p in processes if "multiprocessing.spawn" in p.cmdline]
    return processes if len(workers) == count else None


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.mark.e2e
def test_make_servers_postgres_and_mlflow_end_when_it_is_sigkilled():
    """A SIGKILLed `make server` (scripts/team_server.py) leaves no cluster, server or worker."""
    skip_without_postgres()
    state_dir = Path(tempfile.mkdtemp(prefix="mlp-team-"))  # not pytest's: postgres reads it
    log = state_dir / "server.out"
    command = [sys.executable, "scripts/team_server.py", "--dir", str(state_dir), "--port", "0"]
    with log.open("w") as out:
        server = subprocess.Popen(
            command, cwd=ROOT, env=clean_env(), stdout=out, stderr=subprocess.STDOUT
        )
    processes = set()
    try:
        found = wait_for(lambda: TEAM_READY.search(log.read_text()), 300, "the team server")
        processes = tree(server.pid)
        running = " | ".join(p.cmdline for p in processes)
        assert "postgres: mlflow mlflow" in running  # a backend serving mlflow (own session)
        assert "multiprocessing.spawn" in running  # a uvicorn worker of mlflow server
        postgres_port = int((state_dir / "postgres/postmaster.pid").read_text().split()[3])
        server.kill()
        server.wait()
        assert wait_until_gone(processes, timeout=60) == set()
        assert in_sessions({p.pid for p in processes}) == set()
        assert refuses_connections(int(found.group(1))) and refuses_connections(postgres_port)
        # PostgreSQL was shut down (SIGINT, fast), not killed: it removes its pid file then.
        assert not (state_dir / "postgres/postmaster.pid").exists()
    finally:
        server.kill()
        kill_all(processes)
        shutil.rmtree(state_dir, ignore_errors=True)

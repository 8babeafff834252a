"""Runs left RUNNING by a dead process.

A run records the process that holds it (train's, then evaluate's and export's while they log
into it); a RUNNING run whose process is gone from this host was killed without a chance to end
it (SIGKILL, OOM killer, power cut).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from pipeline.tracking.store.access import retry_locked


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
        running = retry_locked(
            client.search_runs, [experiment_id], filter_string=query, max_results=1000
        )
        stale = [run.info.run_id for run in running if not _process_alive(run.data.tags)]
        for run_id in stale:
            retry_locked(client.set_terminated, run_id, status="KILLED")
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

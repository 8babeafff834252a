"""Process trees read from /proc: who is below a process, and whether they are all gone."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import ROOT, clean_env

# A parent that starts argv under a lifeline, prints the lifeline's pid, and waits to be killed.
TIED_PARENT = """
import sys, time
from pipeline.process.lifeline import popen_tied
child = popen_tied(sys.argv[2:], grace_s=float(sys.argv[1]))
print(child.pid, flush=True)
time.sleep(600)
"""


@dataclass(frozen=True)
class Proc:
    pid: int
    started: int  # clock ticks after boot: tells a process from a later one with its pid
    cmdline: str


def _read(pid: int) -> Proc | None:
    """The process with this pid, or None if there is none or it is a zombie (it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rpartition(")")[2].split()
    if fields[0] == "Z":
        return None
    return Proc(pid, int(fields[19]), cmdline.strip())


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def tree(root: int) -> set[Proc]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if (proc := _read(pid)) is not None:
            found.add(proc)
        todo += children.get(pid, [])
    return found


def in_sessions(sessions: set[int]) -> set[Proc]:
    """Live processes of these sessions: also those started after a snapshot of the tree."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) in sessions and (proc := _read(int(entry.name))) is not None:
            found.add(proc)
    return found


def still_running(processes: set[Proc]) -> set[Proc]:
    return {proc for proc in processes if _read(proc.pid) == proc}


def wait_until_gone(processes: set[Proc], timeout: float) -> set[Proc]:
    """Wait up to `timeout` seconds for every process to end; those still running."""
    deadline = time.monotonic() + timeout
    while (left := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def kill_all(processes: set[Proc]) -> None:
    """Clean-up after a failed test: nothing it started may outlive it."""
    for proc in still_running(processes):
        os.kill(proc.pid, signal.SIGKILL)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def start_tied_parent(argv: list[str], grace_s: float = 10.0, **env: str) -> subprocess.Popen:
    """A parent process (not tied itself) that starts argv with popen_tied."""
    return subprocess.Popen(
        [sys.executable, "-c", TIED_PARENT, str(grace_s), *argv],
        cwd=ROOT,
        env=clean_env(PYTHONPATH=str(ROOT), **env),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


LOOPBACK = "0100007F"  # 127.0.0.1 as the kernel lists it: little-endian hex


def listening_addresses(port: int) -> set[str]:
    """The local addresses of sockets listening on `port`, from the kernel's own table."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port and len(address) == width:
                    found.add(address)  # 0A: LISTEN
    return found

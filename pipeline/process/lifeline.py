"""Child processes that end with whoever started them, however it ends (SIGKILL included).

`popen_tied(cmd, **popen_kwargs)` starts `cmd` under a lifeline: lifeline_watchdog.py, run as
a small process of the standard library only. The lifeline

- holds the read end of a pipe whose only writer is the caller: end of file means the caller is
  gone, whichever way it went;
- is a child subreaper (PR_SET_CHILD_SUBREAPER): every descendant whose parent dies is
  reparented to it, so /proc's parent links reach the whole tree, even processes that left the
  process group or session (PostgreSQL's backends call setsid(), pg_ctl daemonizes);
- passes on the signals the caller sends (terminate(), send_signal()) to the command, and exits
  with the command's status once the command and everything it left behind are gone;
- gives the command PR_SET_PDEATHSIG=SIGKILL, should the lifeline itself be SIGKILLed.

Why not PR_SET_PDEATHSIG alone: grandchildren (mlflow server's uvicorn workers) do not inherit
it, a user switch (postgres) clears it, and it fires when the starting *thread* ends. Why not a
process group alone: nobody is left to signal it once the parent is SIGKILLed. Linux only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# The lifeline process: a script of the standard library only, started by its path.
WATCHDOG = Path(__file__).with_name("lifeline_watchdog.py")


class TiedPopen(subprocess.Popen):
    """The lifeline's Popen; pid, wait(), returncode and signals stand for the command's.

    `pid` is the lifeline's (the leader of the command's process group); signals sent to it
    reach the command, and wait() returns once the command and all its descendants are gone.
    """

    tie_fd: int | None = None

    def kill(self) -> None:
        # SIGKILL cannot be passed on: it goes to the lifeline's whole process group at once.
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def stop(self, stop_signal: int, timeout: float) -> int:
        """Ask the command to end with `stop_signal`; force the whole tree if it takes longer."""
        self.send_signal(stop_signal)
        try:
            return self.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.wait()

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        self._cut_tie()
        return code

    def poll(self) -> int | None:
        code = super().poll()
        if code is not None:
            self._cut_tie()
        return code

    def _cut_tie(self) -> None:
        if self.tie_fd is not None:
            os.close(self.tie_fd)
            self.tie_fd = None


def popen_tied(
    cmd: Sequence[str | os.PathLike],
    *,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    grace_s: float = 10.0,
    **popen_kwargs,
) -> TiedPopen:
    """Start `cmd` so that it and all its descendants end when the calling process ends.

    When the caller is gone, the command gets `stop_signal`, and whatever of its tree is left
    after `grace_s` seconds gets SIGKILL. `user`: the account the command (not the lifeline)
    runs as, for a root caller. popen_kwargs go to subprocess.Popen (cwd, env, stdin, stdout,
    stderr, text, ...) and reach the command through the lifeline. Returns once the command
    runs; a command that cannot be started raises OSError, as Popen does.
    """
    command = [os.fspath(part) for part in cmd]
    tie_read, tie_write = os.pipe()
    report_read, report_write = os.pipe()
    lifeline = [sys.executable, "-I", "-S", str(WATCHDOG.resolve())]
    lifeline += [str(tie_read), str(report_write), str(int(stop_signal)), str(grace_s)]
    lifeline += [user or "", "--", *command]
    pass_fds = (*popen_kwargs.pop("pass_fds", ()), tie_read, report_write)
    try:
        process = TiedPopen(lifeline, pass_fds=pass_fds, start_new_session=True, **popen_kwargs)
    except BaseException:
        os.close(tie_write)
        raise
    finally:
        os.close(tie_read)
        os.close(report_write)
    process.tie_fd = tie_write
    process.args = command
    _raise_if_not_started(process, report_read, command[0])
    return process


def _raise_if_not_started(process: TiedPopen, report_read: int, program: str) -> None:
    with os.fdopen(report_read, "rb") as report:
        answer = report.read().decode()
    if answer == "started":
        return
    process.wait()
    if answer.startswith("error "):
        number, _, message = answer.removeprefix("error ").partition(" ")
        raise OSError(int(number), message, program)
    raise OSError(f"the lifeline of {program} exited with code {process.returncode}")

"""Child processes that end with whoever started them, however it ends (SIGKILL included).

`popen_tied(cmd, **popen_kwargs)` starts `cmd` under a lifeline: this file, run as a small
watchdog process of the standard library only. The lifeline

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
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Signals a caller sends to stop or steer the command; the lifeline passes them on.
FORWARDED = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
POLL_S = 0.1
KILL_PATIENCE_S = 5.0


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
    lifeline = [sys.executable, "-I", "-S", os.path.abspath(__file__)]
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


# ---------------------------------------------------------------------------------------------
# The lifeline process itself


def _prctl(option: int, value: int) -> None:
    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _spawn(command: list[str], user: str, report: int) -> int:
    """Fork and exec the command; its pid, or exit after telling the caller why it failed."""
    failure_read, failure_write = os.pipe()  # closed by a successful exec
    pid = os.fork()
    if pid == 0:
        os.close(failure_read)
        _become_command(command, user, failure_write)
    os.close(failure_write)
    with os.fdopen(failure_read, "rb") as failure:
        error = failure.read().decode()
    os.write(report, f"error {error}".encode() if error else b"started")
    os.close(report)
    if error:
        os._exit(127)
    return pid


def _become_command(command: list[str], user: str, failure_write: int) -> None:
    lifeline = os.getppid()
    try:
        for number in FORWARDED:
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        if user:
            import pwd

            account = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the user switch, which clears it
        if os.getppid() != lifeline:  # the lifeline died before the line above
            os._exit(1)
        os.execvp(command[0], command)
    except KeyError:
        os.write(failure_write, f"0 no such user: {user}".encode())
    except BaseException as exc:  # this is a fork of the lifeline: never return into its code
        errno = getattr(exc, "errno", None) or 0
        os.write(failure_write, f"{errno} {getattr(exc, 'strerror', None) or exc}".encode())
    os._exit(127)


class _Tree:
    """The command and every process below the lifeline; reaps them as they end."""

    def __init__(self, command_pid: int):
        self.command_pid = command_pid
        self.status: int | None = None  # the command's wait status, once it ended

    def forward(self, number: int) -> None:
        if self.status is None:  # once reaped, its pid may belong to someone else
            _signal(self.command_pid, number)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.command_pid:
                self.status = status

    def members(self) -> list[int]:
        """Live descendants of the lifeline, from /proc's parent links (zombies are over)."""
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    state, ppid = stat.read().rpartition(")")[2].split()[:2]
            except OSError:
                continue  # ended while we looked
            if state != "Z":
                children.setdefault(int(ppid), []).append(int(entry.name))
        found, todo = [], [os.getpid()]
        while todo:
            below = children.get(todo.pop(), [])
            found += below
            todo += below
        return found

    def stop(self, stop_signal: int, grace_s: float) -> None:
        """stop_signal to the command, SIGTERM to what it leaves, SIGKILL to what is left."""
        if self.status is None:
            _signal(self.command_pid, stop_signal)
        deadline = time.monotonic() + grace_s
        orphans_told = False
        while (members := self._reaped_members()) and time.monotonic() < deadline:
            if self.status is not None and not orphans_told:
                for pid in members:
                    _signal(pid, signal.SIGTERM)
                orphans_told = True
            time.sleep(POLL_S / 2)
        deadline = time.monotonic() + KILL_PATIENCE_S
        while (members := self._reaped_members()) and time.monotonic() < deadline:
            for pid in members:
                _signal(pid, signal.SIGKILL)
            time.sleep(POLL_S / 2)

    def _reaped_members(self) -> list[int]:
        self.reap()
        return self.members()


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _exit_like(status: int) -> None:
    """End the lifeline as the command ended: same exit code, or killed by the same signal."""
    if os.WIFSIGNALED(status):
        import resource

        number = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the command dumped core, if any
        if number in FORWARDED:  # the others kept their default action
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _watch(argv: list[str]) -> None:
    tie, report, stop_signal, grace_s, user = argv[:5]
    tie, report, stop_signal, grace_s = int(tie), int(report), int(stop_signal), float(grace_s)
    command = argv[6:]
    for fd in (tie, report):
        os.set_inheritable(fd, False)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    # Held until the command runs: a terminate() right after popen_tied() must reach it.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    tree = _Tree(_spawn(command, user, report))
    for number in FORWARDED:
        signal.signal(number, lambda received, frame: tree.forward(received))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    while tree.status is None:
        readable, _, _ = select.select([tie], [], [], POLL_S)
        if readable and not os.read(tie, 1):  # end of file: the caller is gone
            tree.stop(stop_signal, grace_s)
            os._exit(1)
        tree.reap()
    tree.stop(signal.SIGTERM, grace_s)  # what the command left behind
    _exit_like(tree.status)


if __name__ == "__main__":
    _watch(sys.argv[1:])

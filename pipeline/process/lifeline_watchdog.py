"""The lifeline process of pipeline/process/lifeline.py: starts the command, watches the caller.

Run by popen_tied as `python -I -S lifeline_watchdog.py TIE REPORT STOP_SIGNAL GRACE_S USER --
COMMAND...`; the standard library only, and few modules of it, so that it starts quickly.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import time

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


def _wake_on_child_exit() -> int:
    """A pipe that SIGCHLD writes to: the loop learns of the command's end at once."""
    woken, wake = os.pipe()
    for fd in (woken, wake):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda number, frame: None)
    return woken


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
    woken = _wake_on_child_exit()
    while tree.status is None:
        readable, _, _ = select.select([tie, woken], [], [], POLL_S)
        if tie in readable and not os.read(tie, 1):  # end of file: the caller is gone
            tree.stop(stop_signal, grace_s)
            os._exit(1)
        if woken in readable:
            os.read(woken, 512)
        tree.reap()
    tree.stop(signal.SIGTERM, grace_s)  # what the command left behind
    _exit_like(tree.status)


if __name__ == "__main__":
    _watch(sys.argv[1:])

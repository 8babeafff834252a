"""Signals: SIGTERM as an exception, Ctrl-C and SIGTERM held while a store or a set of files is
written, and the exit code and line that an interrupted command ends with.

A KeyboardInterrupt raised in the middle of a SQLAlchemy query leaves its SQLite connection
holding a lock: the very next write (telling Optuna the trial failed, ending the MLflow run
KILLED) then fails with "database is locked" and the study exits 1 with a traceback instead of
130/143. Training itself stays interruptible at any point; only the short store calls wait.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The shell's convention: 128 + the signal's number.
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into an exception so that runs end KILLED and files stay whole."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside the block SIGTERM raises Interrupted (a KeyboardInterrupt), as Ctrl-C does."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(f"signal {signum}")


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Run the block with SIGINT/SIGTERM held; the first one that came is delivered at its end
    to the handler that was in place before (so it raises as it would have). Main thread only.
    Usable as a decorator too: each call holds anew.

    Python-level handlers, not a thread's signal mask: a process-directed signal goes to any
    thread that does not block it (torch's worker threads, say), and Python then runs the
    handler in the main thread all the same.
    """
    caught: list[int] = []

    def hold(signum, frame) -> None:
        caught.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in HELD_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            _deliver(caught[0], previous[caught[0]])


def _deliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)  # Python's SIGINT handler raises KeyboardInterrupt here
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)  # no Python handler: the process ends as the signal says


def interrupted_exit(exc: KeyboardInterrupt, what: str, advice: str = "") -> int:
    """Say on stderr that `what` was interrupted, and by which signal; return the exit code."""
    name = "SIGTERM" if isinstance(exc, Interrupted) else "SIGINT"
    print(f"error: {what} interrupted by {name}{advice}", file=sys.stderr)
    return EXIT_CODES[name]

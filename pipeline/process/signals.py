"""Hold Ctrl-C and SIGTERM while a store is written, and deliver them when the write is done.

A KeyboardInterrupt raised in the middle of a SQLAlchemy query leaves its SQLite connection
holding a lock: the very next write (telling Optuna the trial failed, ending the MLflow run
KILLED) then fails with "database is locked" and the study exits 1 with a traceback instead of
130/143. Training itself stays interruptible at any point; only the short store calls wait.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Run the block with SIGINT/SIGTERM held; the first one that came is delivered at its end
    to the handler that was in place before (so it raises as it would have). Main thread only.
    Usable as a decorator too: each call holds anew."""
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

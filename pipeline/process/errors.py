"""One error type for bad input, and the wrapper that turns it into a one-line exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps

BAD_INPUT_EXIT = 2


class InputError(Exception):
    """Bad params, files or arguments: the message names the key or file, value and expectation."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into an exception so that runs end KILLED and files stay whole."""


def exits_cleanly(main: Callable[..., int | None]) -> Callable[..., int]:
    """Run a stage's main(); bad input prints one line and exits 2 instead of a traceback."""

    @wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return BAD_INPUT_EXIT

    return wrapper

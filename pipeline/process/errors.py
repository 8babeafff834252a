"""One error type for bad input, and the wrapper that turns it into a one-line exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps

BAD_INPUT_EXIT = 2


class InputError(Exception):
    """Bad params, files or arguments: the message names the key or file, value and expectation."""


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


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line of text (its type's name when it has none), at most `limit`
    characters: what a one-line error message quotes of a library's long explanation."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]

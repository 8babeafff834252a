"""Atomic file writes and hashing: an interrupted stage never leaves a half-written output."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.process.signals import held


def _new_file_mode() -> int:
    """What open() gives a new file: 0666 less the umask (which only os.umask can read)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()

# The renames that all_or_nothing() holds back; None outside such a block.
_held_renames: contextvars.ContextVar[list[tuple[Path, Path]] | None] = contextvars.ContextVar(
    "held_renames", default=None
)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp makes the file private (0600); an output gets the mode open() would give it.
    os.fchmod(fd, NEW_FILE_MODE)
    os.close(fd)
    tmp: Path | None = Path(name)
    held = _held_renames.get()
    try:
        yield tmp
        if held is None:
            os.replace(tmp, path)
        else:
            held.append((tmp, path))
            tmp = None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Several outputs as one: the atomic writes inside the block land together or not at all.

    Each file is written to its temporary name as usual; only when the whole block succeeds are
    they renamed into place, one after the other with SIGINT/SIGTERM held back, so an
    interruption leaves either every previous file or every new one, never a mix.
    """
    renames: list[tuple[Path, Path]] = []
    token = _held_renames.set(renames)
    try:
        yield
    except BaseException:
        for tmp, _ in renames:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _held_renames.reset(token)
    with held():
        for tmp, path in renames:
            os.replace(tmp, path)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, payload: dict[str, Any]) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def sha256_of(paths: list[Path]) -> str:
    """One digest over several files, in the given order (the data version tag)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()

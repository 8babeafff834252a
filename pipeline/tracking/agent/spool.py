"""A run's metric points on disk: the spool the trainer appends to and a sender reads."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

# Metric points a training could not send yet, per run, under the repository root.
SPOOL_DIR = ".mlflow-spool"
# The trainer writes points to the spool in bunches of this many (a system call per point slows
# training by more than the point costs); other metrics and the run's end write at once.
APPEND_BUNCH = 16


class Spool:
    """A run's metric points in an append-only file, and how far they have been sent.

    <run_id>.points  one line per point: key, step, timestamp (ms), value, tab-separated
    <run_id>.sent    the byte offset up to which the points are in the store
    <run_id>.json    the run and its store, and the final status if the store could not be told
    """

    def __init__(self, meta: Path):
        self.meta = meta
        self.points = meta.with_suffix(".points")
        self.sent = meta.with_suffix(".sent")
        info = json.loads(meta.read_text())
        self.run_id, self.tracking_uri = info["run_id"], info["tracking_uri"]
        self.status: str | None = info.get("status")
        self.written = 0  # bytes the trainer has handed to the system
        self._fd: int | None = None  # the trainer's, to append
        self._bunch: list[tuple[str, int, int, float]] = []
        self._sent_fd: int | None = None  # the sender's, to record progress

    @classmethod
    def create(cls, directory: Path, run_id: str, tracking_uri: str) -> Spool:
        directory.mkdir(parents=True, exist_ok=True)
        meta = directory / f"{run_id}.json"
        write_atomic(meta, json.dumps({"run_id": run_id, "tracking_uri": tracking_uri}))
        return cls(meta)

    def open(self) -> None:
        """Start appending (the trainer's side)."""
        self._fd = os.open(self.points, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.written = os.fstat(self._fd).st_size

    def append(self, key: str, step: int, value: float) -> None:
        self._bunch.append((key, step, time.time_ns(), value))
        if len(self._bunch) >= APPEND_BUNCH:
            self.flush()

    def flush(self) -> None:
        """Hand the bunch to the system: from then on it outlives the trainer, even a SIGKILL."""
        if self._bunch:
            lines = [
                f"{key}\t{int(step)}\t{ns // 1_000_000}\t{float(value)!r}\n"
                for key, step, ns, value in self._bunch
            ]
            self.written += os.write(self._fd, "".join(lines).encode())
            self._bunch.clear()

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None

    def keep_status(self, status: str) -> None:
        """Remember the run's final status for `replay`: the store did not answer."""
        self.status = status
        info = {"run_id": self.run_id, "tracking_uri": self.tracking_uri, "status": status}
        write_atomic(self.meta, json.dumps(info))

    def sent_offset(self) -> int:
        try:
            return int(self.sent.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def mark_sent(self, offset: int) -> None:
        # Rewritten in place, at a fixed width (a write this small lands whole): renaming a new
        # file tens of times a second would keep the file system's journal busy during training.
        if self._sent_fd is None:
            self._sent_fd = os.open(self.sent, os.O_WRONLY | os.O_CREAT, 0o644)
        os.pwrite(self._sent_fd, f"{offset:020d}\n".encode(), 0)

    def read(self, offset: int, limit: int) -> tuple[list[tuple[str, int, int, float]], int]:
        """Up to `limit` whole points from `offset`, and the offset after them."""
        points: list[tuple[str, int, int, float]] = []
        if not self.points.exists():  # nothing logged yet
            return points, offset
        with open(self.points, "rb") as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # the rest of it is still being written
                offset += len(line)
                key, step, timestamp, value = line.decode().rstrip("\n").split("\t")
                points.append((key, int(step), int(timestamp), float(value)))
                if len(points) == limit:
                    break
        return points, offset

    @contextlib.contextmanager
    def sending(self) -> Iterator[bool]:
        """Held by the one process that sends this spool; False if another one holds it."""
        with open(self.points, "ab") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    def remove(self) -> None:
        if self._sent_fd is not None:
            os.close(self._sent_fd)
            self._sent_fd = None
        for path in (self.points, self.sent, self.meta):
            path.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)

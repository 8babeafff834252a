"""Training progress on the console: a bar on a terminal, the notebook's batch lines elsewhere."""

from __future__ import annotations

import sys

# Off a terminal (dvc repro, CI logs) print about this many batch lines per epoch.
LINES_PER_EPOCH = 10


class Progress:
    def __init__(self, epochs: int, batches_per_epoch: int, stream=None):
        self.epochs, self.batches = epochs, max(batches_per_epoch, 1)
        # The stderr of the moment, not of the import (a test's captured stream is closed later).
        self.stream = stream = stream or sys.stderr
        self.every = max(1, self.batches // LINES_PER_EPOCH)
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs * self.batches, unit="batch", file=stream)

    def batch(self, step: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            return
        epoch, index = divmod(step, self.batches)
        if (index + 1) % self.every == 0 or index + 1 == self.batches:
            print(
                f"[EPOCH] {epoch + 1:03d}/{self.epochs:03d}"
                f" | Batch {index + 1:03d}/{self.batches:03d}"
                f" | Train Loss: {loss:0.2f}",
                file=self.stream,
                flush=True,
            )

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

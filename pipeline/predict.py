"""Predict classes for feature rows in a CSV: softmax probabilities, then the predicted class.

python -m pipeline.predict --model models/model.pth --input points.csv [--output out.csv]
python -m pipeline.predict --model models:/mlp-pipeline@champion --input points.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from pipeline import checkpoint
from pipeline.errors import InputError, exits_cleanly
from pipeline.files import write_text


def read_rows(path: Path, num_inputs: int) -> np.ndarray:
    """Feature rows from a CSV; a first row that is not numeric is taken as a header."""
    try:
        rows = [row for row in csv.reader(path.read_text().splitlines()) if row]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; expected a CSV of feature rows") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not text; expected a CSV of feature rows") from None
    if rows and not _numeric(rows[0]):
        rows = rows[1:]
    for number, row in enumerate(rows, start=1):
        if len(row) != num_inputs or not _numeric(row):
            raise InputError(
                f"{path}: data row {number} is {','.join(row)!r}; expected {num_inputs} numbers"
            )
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), num_inputs)


def _numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def predict(model: torch.nn.Module, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.from_numpy(features)), dim=1).numpy()
    return probabilities, probabilities.argmax(axis=1)


def to_csv(probabilities: np.ndarray, classes: np.ndarray, decimals: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f"prob_{c}" for c in range(probabilities.shape[1])] + ["predicted"])
    for row, label in zip(probabilities, classes, strict=True):
        writer.writerow([f"{p:.{decimals}f}" for p in row] + [int(label)])
    return out.getvalue()


@contextmanager
def model_file(model: str) -> Iterator[Path]:
    """A local state_dict path, or one downloaded from the registry for a models:/ URI."""
    if not model.startswith("models:/"):
        yield Path(model)
        return
    from pipeline.tracking import registry

    with registry.downloaded(model) as path:
        yield path


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="models/model.pth",
        help="a state_dict beside its model.json, or models:/<name>@<alias> (or /<version>)",
    )
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, help="write the CSV here instead of stdout")
    parser.add_argument("--decimals", type=int, default=4, help="digits after the point")
    args = parser.parse_args(argv)
    with model_file(args.model) as path:
        model, arch = checkpoint.load(path)
    probabilities, classes = predict(model, read_rows(args.input, arch.num_inputs))
    text = to_csv(probabilities, classes, args.decimals)
    if args.output:
        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

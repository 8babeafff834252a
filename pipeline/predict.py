"""Predict classes for feature rows in a CSV: softmax probabilities, then the predicted class.

Columns are matched to the model's features by header name; the output names the classes.

python -m pipeline.predict --model models/model.pth --input points.csv [--output out.csv]
python -m pipeline.predict --model models:/mlp-pipeline@champion --input points.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pipeline.data import table
from pipeline.model import checkpoint
from pipeline.model.inference import probabilities, probabilities_table
from pipeline.process.errors import InputError, exits_cleanly
from pipeline.process.files import write_text


def read_rows(path: Path, features: tuple[str, ...]) -> np.ndarray:
    """Feature rows from a CSV: columns matched to `features` by header name (any order, others
    ignored with a warning); without a header (a first row of numbers), in the model's order."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            first = next(csv.reader(handle), [])
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; expected a CSV of feature rows") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not text; expected a CSV of feature rows") from None
    if not first or _numeric(first):
        return _rows_in_order(path, len(features))
    return _rows_by_name(path, first, features)


def _rows_by_name(path: Path, header: list[str], features: tuple[str, ...]) -> np.ndarray:
    missing = [name for name in features if name not in header]
    if missing:
        raise InputError(
            f"{path}: no column {missing[0]!r}; expected a column for each of the model's "
            f"features: {', '.join(features)}"
        )
    ignored = [name for name in header if name not in features]
    if ignored:
        print(
            f"warning: {path}: columns ignored (not features of the model): {', '.join(ignored)}",
            file=sys.stderr,
        )
    rows = table.read_csv(path, header, features)[list(features)].to_numpy(np.float32)
    table.check_finite(path, "csv", rows, features)
    return rows


def _rows_in_order(path: Path, num_inputs: int) -> np.ndarray:
    rows = [row for row in csv.reader(path.read_text().splitlines()) if row]
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


def to_csv(table, decimals: int) -> str:
    """The probabilities table (pipeline.model.inference) as CSV text."""
    return table.to_csv(index=False, float_format=f"%.{decimals}f", lineterminator="\n")


def summary(table, classes: tuple, path: Path) -> str:
    """What a written file holds, in one line: rows, file, rows predicted per class."""
    counts = table["class"].value_counts()
    per_class = ", ".join(f"{c} {int(counts.get(c, 0))}" for c in classes)
    return f"wrote {len(table)} rows to {path} (predicted per class: {per_class})"


@contextmanager
def model_file(model: str) -> Iterator[Path]:
    """A local state_dict path, or one downloaded from the registry for a models:/ URI."""
    if not model.startswith("models:/"):
        yield Path(model)
        return
    from pipeline.tracking.registry import versions as registry

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
    probs = probabilities(model, read_rows(args.input, arch.features))
    table = probabilities_table(probs, arch.classes)
    text = to_csv(table, args.decimals)
    if args.output:
        write_text(args.output, text)
        print(summary(table, arch.classes, args.output))
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Predict classes for feature rows in a CSV: softmax probabilities, then the predicted class.

Columns are matched to the model's features by header name; the output names the classes.

python -m pipeline.predict --model models/model.pth --input points.csv [--output out.csv]
python -m pipeline.predict --model models:/mlp-pipeline@champion --input points.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.data.new_rows import read_rows
from pipeline.model import checkpoint
from pipeline.model.inference import probabilities, probabilities_table
from pipeline.process.errors import exits_cleanly
from pipeline.process.files import write_text


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
    probs = probabilities(model, read_rows(args.input, arch))
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

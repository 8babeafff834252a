"""A user's table checked before its splits are drawn: its classes, enough rows of each."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config.rules import split_counts
from pipeline.config.schema import DataParams
from pipeline.process.errors import InputError


def classes_of(path: Path, target: str, labels) -> tuple[np.ndarray, tuple]:
    """Label indices and the sorted distinct labels: whole numbers if every label is one, else
    strings. Decimal labels would be a regression target, which is not supported.

    The distinct values are found first (hashing), and only those few are parsed and sorted.
    """
    import pandas as pd

    codes, distinct = pd.factorize(labels)
    if (codes < 0).any():  # factorize marks a missing value -1
        row = int((codes < 0).argmax())
        raise InputError(
            f"{path}: row {row + 1}, target column {target!r} is empty; expected a class label "
            "in every row"
        )
    values = pd.Series(np.asarray(distinct))  # categories (CSV) as their plain values
    if values.dtype.kind not in "iuf":  # text (CSV) or strings/booleans (Parquet)
        numbers = pd.to_numeric(values, errors="coerce")
        values = numbers if numbers.notna().all() else values.astype(str)
    if values.dtype.kind == "b":  # true/false from Parquet: names, as in a CSV
        values = values.astype(str)
    if values.dtype.kind == "f":
        fractional = (values != values.round()).to_numpy()
        if fractional.any():
            row = int((codes == fractional.argmax()).argmax())
            raise InputError(
                f"{path}: target column {target!r} holds {labels.iloc[row]!r} (row {row + 1}); "
                "expected class labels (whole numbers or names): regression is not supported"
            )
        values = values.astype(np.int64)
    # Distinct texts may be one number ("7" and "07"): factorized again, sorted.
    merged, classes = pd.factorize(values, sort=True)
    return merged[codes], tuple(classes.tolist())  # Python ints or strs, as JSON has them


def check_sizes(path: Path, data: DataParams, codes: np.ndarray, classes: tuple) -> None:
    if len(classes) < 2:
        raise InputError(
            f"{path}: target column {data.target!r} holds one class ({classes[0]!r}); expected "
            "at least 2 classes"
        )
    counts = np.bincount(codes, minlength=len(classes))
    if counts.min() < 2:
        raise too_small(path, data, codes, classes)
    sizes = split_counts(len(codes), test_size=data.test_size, val_size=data.val_size)
    for split in ("test", "val", "train") if data.val_size else ("test", "train"):
        if (size := sizes[split]) < len(classes):
            raise InputError(
                f"{path}: {len(codes)} rows give the {split} split {size} rows "
                f"(data.test_size {data.test_size}, data.val_size {data.val_size}), fewer than the "
                f"{len(classes)} classes; expected more rows or larger shares"
            )


def too_small(path: Path, data: DataParams, codes: np.ndarray, classes: tuple) -> InputError:
    counts = np.bincount(codes, minlength=len(classes))
    smallest = int(counts.argmin())
    return InputError(
        f"{path}: class {classes[smallest]!r} of column {data.target!r} has {counts[smallest]} "
        f"row(s), too few to stratify the splits (data.test_size {data.test_size}, "
        f"data.val_size {data.val_size}); expected at least 2 rows of each class in every split "
        "that is divided"
    )

"""A table's columns as the MLP's inputs, fitted on the training split only: numbers imputed
(median, plus a "was missing" indicator), then standardized; text, category and boolean columns
one-hot, with a slot for missing cells and one "other" slot for rare and unseen categories.

Fitted once (generate), stored as plain JSON in models/model.json, and applied by the same code in
generate, `pipeline.predict` and the served MLflow model: all of them take raw rows.
The columns come in as raw arrays (pipeline/data/table_columns.py makes them from a file or a
DataFrame): Numbers (float64, NaN = missing) and Categories (codes into labels, -1 = missing).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

MISSING, OTHER = "(missing)", "(other)"
# Rows are encoded this many at a time: a block's rows stay in the cache while its columns are
# written one by one into the row-major array (a whole column at a time touched every row).
ROWS_PER_BLOCK = 8192


@dataclass(frozen=True)
class Numbers:
    values: np.ndarray  # float64; NaN where the cell is missing


@dataclass(frozen=True)
class Categories:
    codes: np.ndarray  # integer indices into `labels`; -1 where the cell is missing
    labels: tuple[str, ...]  # distinct texts, as canonical_label spells them


def canonical_label(value) -> str:
    """One spelling per category: surrounding spaces dropped, and true/false however written
    (a CSV's text, Parquet's or JSON's booleans) as True/False."""
    text = str(value).strip()
    return text.capitalize() if text.lower() in ("true", "false") else text


@dataclass(frozen=True)
class NumberColumn:
    name: str
    median: float
    mean: float
    scale: float
    indicator: bool  # the training split had missing cells: a 0/1 input says which rows

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.name, f"{self.name} {MISSING}") if self.indicator else (self.name,)

    def encode(self, raw: Numbers, rows: np.ndarray, out: np.ndarray, at: int) -> None:
        values = raw.values[rows]
        missing = np.isnan(values)
        out[:, at] = (np.where(missing, self.median, values) - self.mean) / self.scale
        if self.indicator:
            out[:, at + 1] = missing


@dataclass(frozen=True)
class CategoryColumn:
    name: str
    categories: tuple[str | None, ...]  # one slot each, sorted; None: the missing cells' slot
    other: bool  # a last slot for categories rarer than data.min_frequency (and unseen ones)

    @property
    def outputs(self) -> tuple[str, ...]:
        names = [f"{self.name}={MISSING if c is None else c}" for c in self.categories]
        return (*names, f"{self.name}={OTHER}") if self.other else tuple(names)

    def slots(self, raw: Categories) -> tuple[np.ndarray, list[str]]:
        """Each code's slot (index 0: missing cells; -1: no slot, all zeros) and the labels this
        encoding never saw."""
        known = {label: slot for slot, label in enumerate(self.categories)}
        fallback = len(self.categories) if self.other else -1
        unseen = [label for label in raw.labels if label not in known]
        slot_of = [known.get(None, fallback)] + [known.get(lb, fallback) for lb in raw.labels]
        return np.asarray(slot_of, dtype=np.int64), unseen

    def encode(self, slot_of: np.ndarray, raw: Categories, rows, out, at: int) -> None:
        slots = slot_of[raw.codes[rows] + 1]
        hit = np.flatnonzero(slots >= 0)
        out[hit, at + slots[hit]] = 1.0


@dataclass(frozen=True)
class TableEncoding:
    columns: tuple[NumberColumn | CategoryColumn, ...]

    @property
    def raw_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(name for column in self.columns for name in column.outputs)

    def schema(self) -> list[dict[str, str]]:
        """The raw columns and their types, as MLflow names them (double, string)."""
        return [
            {"name": c.name, "type": "double" if isinstance(c, NumberColumn) else "string"}
            for c in self.columns
        ]

    def transform(
        self,
        raw: Mapping[str, Numbers | Categories],
        rows: np.ndarray | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> np.ndarray:
        """The encoded float32 rows (row-major) of `rows` (default: all) of the raw columns.
        Categories never seen in training are said in one line through `warn` (if given)."""
        if rows is None:
            rows = np.arange(len(_first(raw)))
        slots, unseen = {}, []
        for column in self.columns:
            if isinstance(column, CategoryColumn):
                slots[column.name], new = column.slots(raw[column.name])
                if new:  # only those in the rows asked for count
                    used = _used_labels(raw[column.name], rows)
                    unseen += [f"{column.name}={label!r}" for label in new if label in used]
        if unseen and warn:
            warn(_unseen_note(unseen))
        out = np.zeros((len(rows), len(self.outputs)), np.float32)
        for start in range(0, len(rows), ROWS_PER_BLOCK):
            block, chunk = out[start : start + ROWS_PER_BLOCK], rows[start : start + ROWS_PER_BLOCK]
            at = 0
            for column in self.columns:
                if isinstance(column, NumberColumn):
                    column.encode(raw[column.name], chunk, block, at)
                else:
                    column.encode(slots[column.name], raw[column.name], chunk, block, at)
                at += len(column.outputs)
        return out

    def decode(self, features: np.ndarray):
        """Encoded rows back to raw values (a DataFrame): an input example for the served model.
        Rare categories come back as "(other)", which the encoding maps to the other slot."""
        import pandas as pd

        frame, at = {}, 0
        for column in self.columns:
            width = len(column.outputs)
            block = features[:, at : at + width].astype(np.float64)
            at += width
            if isinstance(column, NumberColumn):
                values = block[:, 0] * column.scale + column.mean
                frame[column.name] = (
                    np.where(block[:, -1] > 0.5, np.nan, values) if (column.indicator) else values
                )
            else:
                names = [*column.categories, *([OTHER] if column.other else [])]
                frame[column.name] = [
                    names[int(slot)] if row.any() else None
                    for slot, row in zip(block.argmax(axis=1), block, strict=True)
                ]
        return pd.DataFrame(frame)

    def to_dict(self) -> dict:
        return {"columns": [_column_dict(column) for column in self.columns]}

    @classmethod
    def from_dict(cls, raw: dict) -> TableEncoding:
        """The encoding as model.json holds it; ValueError says what is wrong."""
        if not isinstance(raw, dict) or not isinstance(raw.get("columns"), list):
            raise ValueError("encoding lacks its list of columns")
        return cls(tuple(_column_from(entry) for entry in raw["columns"]))


def fit_encoding(
    raw: Mapping[str, Numbers | Categories],
    train_rows: np.ndarray,
    *,
    min_frequency: int,
    standardize: bool = True,
) -> TableEncoding:
    """Everything fitted from the training rows only: medians, means, scales, categories."""
    columns = []
    for name, column in raw.items():
        if isinstance(column, Numbers):
            columns.append(_fit_numbers(name, column.values[train_rows], standardize))
        else:
            columns.append(_fit_categories(name, column, train_rows, min_frequency))
    return TableEncoding(tuple(columns))


def _fit_numbers(name: str, values: np.ndarray, standardize: bool) -> NumberColumn:
    missing = np.isnan(values)
    present = values[~missing]
    median = float(np.median(present)) if len(present) else 0.0
    # As scikit-learn's SimpleImputer then StandardScaler: statistics of the imputed column.
    filled = np.where(missing, median, values)
    mean, std = (float(filled.mean()), float(filled.std())) if standardize else (0.0, 1.0)
    scale = std if std > 10 * np.finfo(np.float64).eps else 1.0  # a constant column stays put
    return NumberColumn(name, median, mean, scale, bool(missing.any()))


def _fit_categories(name: str, column: Categories, train_rows, min_frequency: int):
    counts = np.bincount(column.codes[train_rows] + 1, minlength=len(column.labels) + 1)
    values = (None, *column.labels)  # count 0: the missing cells
    frequent = [value for value, n in zip(values, counts, strict=True) if n >= min_frequency]
    rare = any(0 < n < min_frequency for n in counts)
    # Sorted as scikit-learn's OneHotEncoder sorts them: the missing cells' slot last.
    ordered = sorted(v for v in frequent if v is not None) + [None] * (None in frequent)
    return CategoryColumn(name, tuple(ordered), rare)


def _used_labels(column: Categories, rows: np.ndarray) -> set[str]:
    present = np.unique(column.codes[rows])
    return {column.labels[code] for code in present if code >= 0}


def _unseen_note(unseen: list[str]) -> str:
    shown = ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
    return (
        f"warning: categories not seen in training, encoded as {OTHER!r} (or no category where "
        f"training had no rare one): {shown}"
    )


def stderr_line(text: str) -> None:
    print(text, file=sys.stderr)


def _first(raw: Mapping[str, Numbers | Categories]) -> np.ndarray:
    column = next(iter(raw.values()))
    return column.values if isinstance(column, Numbers) else column.codes


def _column_dict(column: NumberColumn | CategoryColumn) -> dict:
    if isinstance(column, NumberColumn):
        return {"kind": "number", **vars(column)}
    return {"kind": "category", **vars(column), "categories": list(column.categories)}


def _column_from(entry) -> NumberColumn | CategoryColumn:
    if not isinstance(entry, dict) or entry.get("kind") not in ("number", "category"):
        raise ValueError(f"encoding column {entry!r} is neither a number nor a category")
    try:
        if entry["kind"] == "number":
            numbers = (float(entry[key]) for key in ("median", "mean", "scale"))
            return NumberColumn(str(entry["name"]), *numbers, bool(entry["indicator"]))
        categories = tuple(None if c is None else str(c) for c in entry["categories"])
        return CategoryColumn(str(entry["name"]), categories, bool(entry["other"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"encoding column {entry.get('name')!r} is incomplete") from None

"""New rows to predict, from a CSV: raw columns as a table has them (text, blank cells) for a
model with an encoding, or numeric feature rows for models saved before encodings.

Columns are matched to the model's by header name (any order; others ignored with a warning).
"""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import numpy as np

from pipeline.data.table_columns import raw_from_frame
from pipeline.data.table_read import is_number
from pipeline.model.encoding import TableEncoding, stderr_line
from pipeline.model.network import Architecture
from pipeline.process.errors import InputError, first_line


def read_rows(path: Path, arch: Architecture) -> np.ndarray:
    """The model's input rows (float32) for the rows of a CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            first = next(csv.reader(handle), [])
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; expected a CSV of feature rows") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not text; expected a CSV of feature rows") from None
    if arch.encoding:
        return _encoded_rows(path, first, arch.encoding)
    if not first or all(is_number(cell) for cell in first):
        return _rows_in_order(path, arch.num_inputs)
    return _rows_by_name(path, first, arch.features)


def _encoded_rows(path: Path, header: list[str], encoding: TableEncoding) -> np.ndarray:
    columns = _matched(path, header, encoding.raw_columns)
    frame = _read_csv(path, header, {}, missing=_table_missing_cells())
    raw = raw_from_frame(frame[list(columns)], encoding, str(path))
    return encoding.transform(raw, warn=stderr_line)


def _matched(path: Path, header: list[str], wanted: tuple[str, ...]) -> tuple[str, ...]:
    missing = [name for name in wanted if name not in header]
    if missing:
        raise InputError(
            f"{path}: no column {missing[0]!r}; expected a column for each of the model's "
            f"features: {', '.join(wanted)}"
        )
    ignored = [name for name in header if name not in wanted]
    if ignored:
        print(
            f"warning: {path}: columns ignored (not features of the model): {', '.join(ignored)}",
            file=sys.stderr,
        )
    return wanted


def _rows_by_name(path: Path, header: list[str], features: tuple[str, ...]) -> np.ndarray:
    _matched(path, header, features)
    rows = _read_csv(path, header, dict.fromkeys(features, np.float32))
    rows = rows[list(features)].to_numpy(np.float32)
    finite = np.isfinite(rows)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        what = "empty or NaN" if np.isnan(rows[row, column]) else "infinite (or beyond float32)"
        raise InputError(
            f"{path}: row {row + 1} (line {row + 2}), column {features[column]!r} is {what}; "
            "expected a finite number in every cell"
        )
    return rows


def _rows_in_order(path: Path, num_inputs: int) -> np.ndarray:
    rows = [row for row in csv.reader(path.read_text().splitlines()) if row]
    for number, row in enumerate(rows, start=1):
        if len(row) != num_inputs or not all(is_number(cell) for cell in row):
            raise InputError(
                f"{path}: data row {number} is {','.join(row)!r}; expected {num_inputs} numbers"
            )
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), num_inputs)


def _table_missing_cells() -> list[str]:
    """The cells generate's reader (pyarrow) takes as missing: "", NA, NaN, null, ..."""
    import pyarrow.csv as pacsv

    return list(pacsv.ConvertOptions().null_values)


def _read_csv(path: Path, header: list[str], numeric: dict, missing: list[str] | None = None):
    """A small CSV as a DataFrame: `numeric` columns as float32, every other column as text
    (blank and NA cells missing). Every column is read: pandas checks each line's field count
    only then."""
    import pandas as pd

    dtypes = dict.fromkeys(header, str) | numeric
    try:
        with warnings.catch_warnings():
            # A first data row with an extra field would silently become an index column.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # A number beyond float32 becomes inf, which the caller names with its cell.
            warnings.simplefilter("ignore", RuntimeWarning)
            if missing is None:
                return pd.read_csv(path, dtype=dtypes, index_col=False)
            return pd.read_csv(
                path, dtype=dtypes, index_col=False, keep_default_na=False, na_values=missing
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise InputError(
            f"{path}: not well-formed CSV ({first_line(exc, limit=200)}); expected the header's "
            f"{len(header)} fields on every line"
        ) from None
    except ValueError:  # a numeric cell that is not a number
        raise _not_numeric(path, tuple(numeric)) from None


def _not_numeric(path: Path, names: tuple[str, ...]) -> InputError:
    """Find the cell float32 parsing refused (only after a failure: a second pass as text)."""
    import pandas as pd

    text = pd.read_csv(path, dtype=str, index_col=False)
    for name in names:
        refused = pd.to_numeric(text[name], errors="coerce").isna() & text[name].notna()
        if refused.any():
            row = int(refused.to_numpy().argmax())
            return InputError(
                f"{path}: column {name!r} is not numeric: row {row + 1} (line {row + 2}) holds "
                f"{text[name].iloc[row]!r}; expected numbers in every feature column"
            )
    return InputError(f"{path}: unreadable as numbers; expected numeric feature columns")

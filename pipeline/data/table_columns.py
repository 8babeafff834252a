"""A table's columns as raw arrays for the encoding (pipeline/model/encoding.py), and the columns
that cannot be features, refused in one line each.

From a file (generate): pyarrow's columns, whatever type the reader found; numbers stay numbers,
everything else (text, booleans, dates) is a category column. From a DataFrame (predict's CSV,
the served model's rows): the kinds the fitted encoding says. Both take whole columns at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.config.schema import DataParams
from pipeline.data.table_read import is_number
from pipeline.model.encoding import (
    Categories,
    NumberColumn,
    Numbers,
    TableEncoding,
    canonical_label,
)
from pipeline.process.errors import InputError

# A text column whose distinct values cover this share of its filled cells names the rows
# (a name, an id, R's row names) rather than describing them; checked from this many cells on.
IDENTIFIER_SHARE = 0.9
IDENTIFIER_MIN_CELLS = 10
# A text column whose cells are numbers but for a few is a number column with a typo in it.
NUMBERS_SHARE = 0.9


def raw_columns(path: Path, table, names: tuple[str, ...], data: DataParams) -> dict:
    """Every feature column of a pyarrow table as Numbers or Categories, each checked."""
    import pyarrow as pa

    raw = {}
    for name in names:
        column = table.column(name)
        if pa.types.is_null(column.type) or column.null_count == len(column):
            raise _no_value(path, name)
        if _is_number(column.type):
            raw[name] = Numbers(_numbers(column))
            if np.isnan(raw[name].values).all():  # NaN throughout (Parquet floats)
                raise _no_value(path, name)
            _check_finite(path, name, raw[name].values)
        else:
            raw[name] = _categories(column)
            check_categories(path, name, raw[name], data.max_categories)
    return raw


def _no_value(path: Path, name: str) -> InputError:
    return InputError(
        f"{path}: column {name!r} has no value at all; expected some values (leave it out with "
        "data.drop)"
    )


def _is_number(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _numbers(column) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    as_float = pc.cast(column, pa.float64())
    return pc.fill_null(as_float, np.nan).to_numpy().astype(np.float64, copy=False)


def _categories(column) -> Categories:
    """Codes into the distinct canonical labels: arrow's dictionary encoding (hashing, no
    Python loop over rows), then the few distinct labels spelled once (True/False)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(column, pa.string()).combine_chunks().dictionary_encode()
    codes = pc.fill_null(text.indices, -1).to_numpy().astype(np.int64)
    return _merged(codes, text.dictionary.to_pylist())


def _merged(codes: np.ndarray, values: list) -> Categories:
    """Labels spelled two ways ("true", "True") become one."""
    import pandas as pd

    spelled, labels = pd.factorize(pd.Series([canonical_label(v) for v in values], dtype=object))
    merged = np.append(spelled, -1)  # index -1: a missing cell stays missing
    return Categories(merged[codes] if len(values) else codes, tuple(labels.tolist()))


def check_categories(path: Path, name: str, column: Categories, max_categories: int) -> None:
    filled = int((column.codes >= 0).sum())
    distinct = len(column.labels)
    _check_mostly_numbers(path, name, column, filled)
    if filled >= IDENTIFIER_MIN_CELLS and distinct >= IDENTIFIER_SHARE * filled:
        raise InputError(
            f"{path}: column {name!r} looks like an identifier ({distinct} distinct values in "
            f"{filled} filled cells): it names rows, it cannot describe new ones; leave it out "
            "with data.drop"
        )
    if distinct > max_categories:
        raise InputError(
            f"{path}: column {name!r} holds {distinct} categories, more than data.max_categories "
            f"({max_categories}); expected fewer (leave it out with data.drop, or raise "
            "data.max_categories)"
        )


def _check_mostly_numbers(path: Path, name: str, column: Categories, filled: int) -> None:
    """Refuse, naming the cell, a column of numbers that holds a few cells of text."""
    numeric = np.array([is_number(label) for label in column.labels] + [False])
    cells_of = np.bincount(column.codes[column.codes >= 0], minlength=len(column.labels))
    numbers = int(cells_of[numeric[:-1]].sum())
    if numbers == filled or numbers < NUMBERS_SHARE * filled:
        return
    row = int((~numeric[column.codes] & (column.codes >= 0)).argmax())
    raise InputError(
        f"{path}: column {name!r} is not numeric: {_where(path, row)} holds "
        f"{column.labels[column.codes[row]]!r}; expected numbers in every cell of a number "
        "column (blank for a missing one), or text throughout"
    )


def _where(path: Path, row: int) -> str:
    return f"row {row + 1} (line {row + 2})" if path.suffix.lower() == ".csv" else f"row {row + 1}"


def _check_finite(path: Path, name: str, values: np.ndarray) -> None:
    infinite = np.isinf(values)
    if infinite.any():
        row = int(infinite.argmax())
        raise InputError(
            f"{path}: {_where(path, row)}, column {name!r} is infinite; expected a number or an "
            "empty cell"
        )


def raw_from_frame(frame, encoding: TableEncoding, where: str) -> dict:
    """The encoding's raw columns from a DataFrame (text cells, numbers, None/NaN for missing),
    as the encoding expects each; a number column with a cell that is no number is an
    InputError naming `where`, the column, the row and the cell."""
    import pandas as pd

    raw = {}
    for column in encoding.columns:
        series = frame[column.name].reset_index(drop=True)
        missing = series.isna().to_numpy()
        if isinstance(column, NumberColumn):
            numbers = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
            refused = np.isnan(numbers) & ~missing
            if refused.any():
                row = int(refused.argmax())
                raise InputError(
                    f"{where}: column {column.name!r} is not numeric: row {row + 1} holds "
                    f"{series.iloc[row]!r}; expected a number or an empty cell"
                )
            _check_finite(Path(where), column.name, numbers)
            raw[column.name] = Numbers(numbers)
        else:
            codes, labels = pd.factorize(series.where(~missing, None))
            raw[column.name] = _merged(codes.astype(np.int64), labels.tolist())
    return raw

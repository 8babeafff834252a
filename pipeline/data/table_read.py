"""A user's table file (CSV with a header row, or Parquet) read into a pyarrow Table: the target
column as text, the feature columns with the types the reader finds in them.

pyarrow parses (in C++, several threads): never a Python loop over rows. Every way a file can be
unreadable is one InputError naming the file, and what was expected.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from pipeline.process.errors import InputError, first_line

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# pyarrow guesses a CSV column's type from its first block of rows; a later cell that does not
# fit is "In CSV column #3: CSV conversion error to int64: invalid value '1.5'".
CONVERSION_ERROR = re.compile(r"CSV column #(\d+): CSV conversion error to (\w+)")


def read_table(path: Path, *, target: str, features=(), drop=()):
    """(pyarrow Table of the target and feature columns, the feature names in order)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"{path}: unknown extension {path.suffix or '(none)'!r}; expected .csv (with a header "
            "row) or .parquet"
        )
    if not path.is_file():
        raise InputError(f"{path}: file not found; expected a table added with `dvc add {path}`")
    columns = csv_header(path) if kind == "csv" else _parquet_columns(path)
    names = feature_names(path, columns, target, tuple(features), tuple(drop))
    if kind == "csv":
        return _read_csv(path, columns, [*names, target], target), names
    return _read_parquet(path, [*names, target]), names


def _read_csv(path: Path, header: list[str], wanted: list[str], target: str):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {target: pa.string()}
    for _ in range(len(header) + 1):  # each retry settles one column's type
        options = pacsv.ConvertOptions(
            column_types=types, include_columns=wanted, strings_can_be_null=True
        )
        try:
            return pacsv.read_csv(path, convert_options=options)
        except pa.ArrowInvalid as exc:
            message = first_line(exc, limit=200)
            guessed = CONVERSION_ERROR.search(message)
            if guessed is None:
                raise _unreadable(path, header, message) from None
            # Whole numbers first, then a decimal: numbers after all. Anything else: text.
            name = header[int(guessed.group(1))]
            types[name] = pa.float64() if guessed.group(2).startswith("int") else pa.string()
    raise _unreadable(path, header, "column types did not settle")


def _unreadable(path: Path, header: list[str], message: str) -> InputError:
    if "UTF8" in message:
        return InputError(f"{path}: not UTF-8 CSV text; expected a CSV with a header row")
    return InputError(
        f"{path}: not well-formed CSV ({message}); expected the header's {len(header)} fields on "
        "every line"
    )


def csv_header(path: Path) -> list[str]:
    try:
        # utf-8-sig: spreadsheet programs start UTF-8 files with a byte-order mark, which
        # pandas skips too.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (UnicodeDecodeError, csv.Error):
        raise InputError(f"{path}: not UTF-8 CSV text; expected a CSV with a header row") from None
    if not header:
        raise InputError(f"{path}: empty; expected a header row naming the columns, then rows")
    if all(is_number(name) for name in header):
        raise InputError(
            f"{path}: the first line {','.join(header)[:60]!r} holds numbers only, no header; "
            "expected a header row naming the columns"
        )
    return header


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several kinds for bytes that are not Parquet
        raise InputError(
            f"{path}: unreadable ({first_line(exc, limit=200)}); expected a Parquet file"
        ) from None


def _read_parquet(path: Path, wanted: list[str]):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=wanted)
    except Exception as exc:
        raise InputError(
            f"{path}: unreadable ({first_line(exc, limit=200)}); expected a Parquet file"
        ) from None


def feature_names(path: Path, columns: list[str], target: str, features: tuple, drop: tuple):
    unnamed = [number for number, name in enumerate(columns, start=1) if not name.strip()]
    if unnamed:
        raise InputError(
            f"{path}: column {unnamed[0]} has no name; expected a name for every column (a pandas "
            "index written with the data? write it with index=False)"
        )
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        raise InputError(f"{path}: column {twice[0]!r} appears twice; expected unique names")
    named = [("data.target", target), *(("data.features", f) for f in features)]
    for key, name in [*named, *(("data.drop", d) for d in drop)]:
        if name not in columns:
            raise InputError(
                f"{path}: no column {name!r} ({key}); the columns are {', '.join(columns)}"
            )
    chosen = features or tuple(name for name in columns if name != target)
    names = tuple(name for name in chosen if name not in drop)
    if not names:
        raise InputError(
            f"{path}: no feature column left (data.features, data.drop); expected at least one"
        )
    return names


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

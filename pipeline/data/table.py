"""A user's table (CSV with a header row, or Parquet) read into stratified train/val/test splits.

pandas reads the file (its C parser for CSV, pyarrow for Parquet): never a Python loop over
rows. Every way a table can be unfit is one InputError naming the file, the column or row, and
what was expected; nothing is written before the whole table has passed.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.config.schema import DataParams
from pipeline.data.splits import Split
from pipeline.data.synthetic import split_indices
from pipeline.data.table_checks import check_sizes, classes_of, too_small
from pipeline.process.errors import InputError, first_line

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
UNSUPPORTED = "categorical features and missing values are not supported"


def table_splits(data: DataParams, seed: int) -> dict[str, Split]:
    path = Path(data.path)
    # Two things run beside the main thread's work: the file's digest beside the parsing, and
    # the rows' transposition beside scikit-learn's split (both hold the GIL little).
    with ThreadPoolExecutor(max_workers=2) as pool:
        digest = pool.submit(_sha256, path) if path.is_file() else None
        make_rows, labels, names = read_table(path, target=data.target, features=data.features)
        rows = pool.submit(make_rows)
        codes, classes = classes_of(path, data.target, labels)
        check_sizes(path, data, codes, classes)
        try:
            indices = split_indices(
                codes, test_size=data.test_size, val_size=data.val_size, seed=seed
            )
        except ValueError:  # scikit-learn: a class too small to stratify the val split too
            raise too_small(path, data, codes, classes) from None
        x = rows.result()
        check_finite(path, FORMATS[path.suffix.lower()], x, names)
        meaning = {
            "feature_names": names,
            "classes": classes,
            "source": str(data.path),
            "source_sha256": digest.result(),
            "standardize": data.standardize,
        }
    return {
        name: Split(x[index], codes[index].astype(np.int64), **meaning)
        for name, index in indices.items()
    }


def read_table(path: Path, *, target: str, features: tuple[str, ...] = ()):
    """(make_rows, raw label values, feature names) of a CSV or Parquet file: make_rows() gives
    the features as one float32 array, row by row (not yet checked: see check_finite)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"{path}: unknown extension {path.suffix or '(none)'!r}; expected .csv (with a header "
            "row) or .parquet"
        )
    if not path.is_file():
        raise InputError(f"{path}: file not found; expected a table added with `dvc add {path}`")
    columns = _csv_header(path) if kind == "csv" else _parquet_columns(path)
    names = _feature_names(path, columns, target, features)
    if kind == "csv":
        make_rows, labels = _csv_columns(path, columns, names, target)
    else:
        frame = _read_parquet(path, names, target)
        labels = frame[target]

        def make_rows():
            return _rows(frame[name].to_numpy(np.float32) for name in names)

    return make_rows, labels, names


# Rows are filled this many at a time: a block's rows stay in the cache while its columns are
# written one by one (column by column over the whole table, every write touched every row).
ROWS_PER_BLOCK = 4096


def _rows(columns) -> np.ndarray:
    """One C-ordered float32 array from columns: each row's values side by side, so that taking
    a split's rows copies whole rows (from a column-ordered array it takes seconds per split)."""
    columns = list(columns)
    x = np.empty((len(columns[0]) if columns else 0, len(columns)), np.float32)
    for start in range(0, len(x), ROWS_PER_BLOCK):
        block = x[start : start + ROWS_PER_BLOCK]
        for j, column in enumerate(columns):
            block[:, j] = column[start : start + ROWS_PER_BLOCK]
    return x


class _ArrowRows:
    """The feature columns of a parsed CSV, made one row-major array when called (once), a
    record batch (a few thousand rows) at a time, transposed by Arrow: whole columns are never
    copied out of Arrow's buffers, and those are given back to the system right after."""

    def __init__(self, table):
        self.table = table

    def __call__(self) -> np.ndarray:
        import pyarrow as pa

        x = np.empty((self.table.num_rows, self.table.num_columns), np.float32)
        start = 0
        for batch in self.table.to_batches():
            rows = batch.to_tensor(null_to_nan=True, row_major=True)  # empty cells are NaN
            x[start : start + batch.num_rows] = np.asarray(rows)
            start += batch.num_rows
        self.table = None
        pa.default_memory_pool().release_unused()  # the parsed table's memory, for the splits
        return x


def _csv_columns(path: Path, header: list[str], names: tuple[str, ...], target: str):
    """pyarrow's CSV reader: features as float32 from the start (pandas.read_csv with dtypes
    took 3 to 5 times as long as without), labels as text whose type _classes decides once."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = dict.fromkeys(header, pa.string()) | dict.fromkeys(names, pa.float32())
    options = pacsv.ConvertOptions(
        column_types=types, include_columns=[*names, target], strings_can_be_null=True
    )
    try:
        table = pacsv.read_csv(path, convert_options=options)
    except pa.ArrowInvalid as exc:
        message = first_line(exc, limit=200)
        if "UTF8" in message:
            raise InputError(
                f"{path}: not UTF-8 CSV text; expected a CSV with a header row"
            ) from None
        if "conversion error" in message:  # a feature cell that is not a number
            raise not_numeric_in_csv(path, names) from None
        raise InputError(
            f"{path}: not well-formed CSV ({message}); expected the header's {len(header)} "
            "fields on every line"
        ) from None
    # As categories: a million labels are a million codes and a few names, not Python strings.
    labels = table.column(target).dictionary_encode().to_pandas()
    return _ArrowRows(table.drop_columns([target])), labels


def _csv_header(path: Path) -> list[str]:
    try:
        # utf-8-sig: spreadsheet programs start UTF-8 files with a byte-order mark, which
        # pandas skips too.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (UnicodeDecodeError, csv.Error):
        raise InputError(f"{path}: not UTF-8 CSV text; expected a CSV with a header row") from None
    if not header:
        raise InputError(f"{path}: empty; expected a header row naming the columns, then rows")
    if all(_is_number(name) for name in header):
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


def _feature_names(path: Path, columns: list[str], target: str, features: tuple[str, ...]):
    unnamed = [number for number, name in enumerate(columns, start=1) if not name.strip()]
    if unnamed:
        raise InputError(
            f"{path}: column {unnamed[0]} has no name; expected a name for every column (a pandas "
            "index written with the data? write it with index=False)"
        )
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        raise InputError(f"{path}: column {twice[0]!r} appears twice; expected unique names")
    for key, name in [("data.target", target), *(("data.features", f) for f in features)]:
        if name not in columns:
            raise InputError(
                f"{path}: no column {name!r} ({key}); the columns are {', '.join(columns)}"
            )
    return tuple(features) or tuple(name for name in columns if name != target)


def read_csv(path: Path, header: list[str], numeric: tuple[str, ...]):
    """A small CSV (predict's input) as a DataFrame: `numeric` columns as float32, every other
    column as text.

    Every column is read (no usecols): pandas checks each line's field count only then.
    """
    import pandas as pd

    dtypes = dict.fromkeys(header, str) | dict.fromkeys(numeric, np.float32)
    try:
        with warnings.catch_warnings():
            # A first data row with an extra field would silently become an index column.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # A number beyond float32 becomes inf, which check_finite names with its cell.
            warnings.simplefilter("ignore", RuntimeWarning)
            return pd.read_csv(path, dtype=dtypes, index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise InputError(
            f"{path}: not well-formed CSV ({first_line(exc, limit=200)}); expected the header's "
            f"{len(header)} fields on every line"
        ) from None
    except ValueError:  # a numeric cell that is not a number
        raise not_numeric_in_csv(path, numeric) from None


def not_numeric_in_csv(path: Path, names: tuple[str, ...]) -> InputError:
    """Find the cell float32 parsing refused (only after a failure: a second pass as text)."""
    import pandas as pd

    text = pd.read_csv(path, dtype=str, index_col=False)
    for name in names:
        # Empty and NA cells are read as NaN by both passes; _check_finite names those.
        refused = pd.to_numeric(text[name], errors="coerce").isna() & text[name].notna()
        if refused.any():
            row = int(refused.to_numpy().argmax())
            return _not_numeric(path, name, text[name].iloc[row], f"row {row + 1} (line {row + 2})")
    return InputError(f"{path}: unreadable as numbers; expected numeric feature columns")


def _read_parquet(path: Path, names: tuple[str, ...], target: str):
    import pandas as pd

    try:
        frame = pd.read_parquet(path, columns=[*names, target])
    except Exception as exc:
        raise InputError(
            f"{path}: unreadable ({first_line(exc, limit=200)}); expected a Parquet file"
        ) from None
    for name in names:
        if frame[name].dtype.kind not in "biuf":
            numbers = pd.to_numeric(frame[name], errors="coerce")
            row = int((numbers.isna() & frame[name].notna()).to_numpy().argmax())
            raise _not_numeric(path, name, frame[name].iloc[row], f"row {row + 1}")
    return frame


def _not_numeric(path: Path, column: str, value, where: str) -> InputError:
    return InputError(
        f"{path}: column {column!r} is not numeric: {where} holds {value!r}; expected numbers in "
        f"every feature column ({UNSUPPORTED}; leave the column out with data.features)"
    )


def check_finite(path: Path, kind: str, x: np.ndarray, names: tuple[str, ...]) -> None:
    finite = np.isfinite(x)
    if finite.all():
        return
    row, column = (int(i) for i in np.argwhere(~finite)[0])
    where = f"row {row + 1} (line {row + 2})" if kind == "csv" else f"row {row + 1}"
    what = "empty or NaN" if np.isnan(x[row, column]) else "infinite (or beyond float32)"
    raise InputError(
        f"{path}: {where}, column {names[column]!r} is {what}; expected a finite number in "
        f"every cell ({UNSUPPORTED})"
    )


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

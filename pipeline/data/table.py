"""A user's table (CSV with a header row, or Parquet) read into stratified train/val/test splits,
its columns as they come: encoded by an encoding fitted on the training split only.

Every way a table can be unfit is one InputError naming the file, the column or row, and what was
expected; nothing is written before the whole table has passed.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.config.schema import DataParams
from pipeline.data.splits import Split
from pipeline.data.synthetic import split_indices
from pipeline.data.table_checks import check_sizes, classes_of, too_small
from pipeline.data.table_columns import raw_columns
from pipeline.data.table_read import read_table
from pipeline.model.encoding import fit_encoding


def table_splits(data: DataParams, seed: int) -> dict[str, Split]:
    path = Path(data.path)
    # The file's digest is computed beside the parsing (reading and hashing hold the GIL little).
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(_sha256, path) if path.is_file() else None
        table, names = read_table(path, target=data.target, features=data.features, drop=data.drop)
        table, without_target = _rows_with_target(table, data.target)
        labels = table.column(data.target).dictionary_encode().to_pandas()
        codes, classes = classes_of(path, data.target, labels)
        raw = raw_columns(path, table, names, data)  # every column checked before the split
        del table, labels  # the raw arrays hold what is needed: the file's copy can go
        _release_arrow_memory()  # back to the system, for the encoded splits
        check_sizes(path, data, codes, classes)
        try:
            indices = split_indices(
                codes, test_size=data.test_size, val_size=data.val_size, seed=seed
            )
        except ValueError:  # scikit-learn: a class too small to stratify the val split too
            raise too_small(path, data, codes, classes) from None
        encoding = fit_encoding(
            raw,
            indices["train"],
            min_frequency=data.min_frequency,
            standardize=bool(data.standardize),
        )
        meaning = {
            "feature_names": encoding.outputs,
            "classes": classes,
            "source": str(data.path),
            "source_sha256": digest.result(),
            # The encoding standardizes the numbers: the model adds no Standardize module.
            "standardize": False,
            "encoding": encoding,
            "rows_without_target": without_target,
        }
        return {
            name: Split(encoding.transform(raw, index), codes[index].astype(np.int64), **meaning)
            for name, index in indices.items()
        }


def _rows_with_target(table, target: str):
    """The rows whose target cell holds a value, and how many were left out."""
    import pyarrow.compute as pc

    labels = table.column(target)
    if not labels.null_count:
        return table, 0
    kept = table.filter(pc.is_valid(labels))
    return kept, table.num_rows - kept.num_rows


def _release_arrow_memory() -> None:
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()

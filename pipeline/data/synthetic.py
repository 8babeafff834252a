"""Generated sets: the notebook's toy points and scikit-learn synthetic sets; stratified splits.

A user's table is read by pipeline.data.table, which draws its splits with split_indices; a split
and its .npz file are pipeline.data.splits; batches are pipeline.data.batching.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.config.schema import DataParams
from pipeline.data.splits import Split

SPLITS = ("train", "val", "test")

# The notebook's toy set (cell "To simulate the creation of a DataLoader").
TOY_TRAIN = (
    [[-1.2, 3.1], [-0.9, 2.9], [-0.5, 2.6], [2.3, -1.1], [2.7, -1.5]],
    [0, 0, 0, 1, 1],
)
TOY_TEST = ([[-0.8, 2.8], [2.6, -1.6]], [0, 1])


def generate(data: DataParams, seed: int) -> dict[str, Split]:
    if data.kind == "toy":
        meaning = {
            "classes": (0, 1),
            "source": "pipeline.data.synthetic.toy",
            "standardize": data.standardize,
        }
        return {
            "train": _split(*TOY_TRAIN, **meaning),
            "val": _split(np.zeros((0, 2)), np.zeros(0), **meaning),
            "test": _split(*TOY_TEST, **meaning),
        }
    return _classification(data, seed)


def _classification(data: DataParams, seed: int) -> dict[str, Split]:
    from sklearn.datasets import make_classification

    # make_classification needs 2**n_informative >= n_classes * clusters_per_class.
    n_informative = min(data.n_features, max(math.ceil(math.log2(2 * data.n_classes)), 10))
    x, y = make_classification(
        n_samples=data.n_samples,
        n_features=data.n_features,
        n_informative=n_informative,
        n_redundant=min(data.n_features - n_informative, 5),
        n_classes=data.n_classes,
        class_sep=1.5,
        random_state=seed,
    )
    rows = split_rows(x, y, test_size=data.test_size, val_size=data.val_size, seed=seed)
    classes = tuple(range(data.n_classes))
    source = "sklearn.datasets.make_classification"
    meaning = {"classes": classes, "source": source, "standardize": data.standardize}
    return {name: _split(*xy, **meaning) for name, xy in rows.items()}


def split_rows(x, y, *, test_size: float, val_size: float, seed: int) -> dict[str, tuple]:
    """Stratified train/val/test (features, labels), drawn from `seed` (val from the rest)."""
    # Row indices are split, then each split's rows taken once: the same rows in the same order
    # as splitting the arrays themselves, without holding the intermediate rest of a large table.
    indices = split_indices(y, test_size=test_size, val_size=val_size, seed=seed)
    return {name: (x[index], y[index]) for name, index in indices.items()}


def split_indices(y, *, test_size: float, val_size: float, seed: int) -> dict[str, np.ndarray]:
    """The rows of each stratified split (split_rows without the rows themselves)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    rest, test = train_test_split(rows, test_size=test_size, stratify=y, random_state=seed)
    val = rows[:0]
    if val_size:
        rest, val = train_test_split(rest, test_size=val_size, stratify=y[rest], random_state=seed)
    return {"train": rest, "val": val, "test": test}


def _split(features, labels, **meaning) -> Split:
    x, y = np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    return Split(x, y, **meaning)

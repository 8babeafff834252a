"""Datasets: the notebook's toy points and scikit-learn synthetic sets; save, load, batches."""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from pipeline.errors import InputError
from pipeline.files import atomic_path
from pipeline.params import DataParams

SPLITS = ("train", "val", "test")

# The notebook's toy set (cell "To simulate the creation of a DataLoader").
TOY_TRAIN = (
    [[-1.2, 3.1], [-0.9, 2.9], [-0.5, 2.6], [2.3, -1.1], [2.7, -1.5]],
    [0, 0, 0, 1, 1],
)
TOY_TEST = ([[-0.8, 2.8], [2.6, -1.6]], [0, 1])


@dataclass(frozen=True)
class Split:
    features: np.ndarray  # float32, shape (n, n_features)
    labels: np.ndarray  # int64, shape (n,)

    def __len__(self) -> int:
        return len(self.labels)


def generate(data: DataParams, seed: int) -> dict[str, Split]:
    if data.kind == "toy":
        return {
            "train": _split(*TOY_TRAIN),
            "val": _split(np.zeros((0, 2)), np.zeros(0)),
            "test": _split(*TOY_TEST),
        }
    return _classification(data, seed)


def _classification(data: DataParams, seed: int) -> dict[str, Split]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

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
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=data.test_size, stratify=y, random_state=seed
    )
    x_val, y_val = np.zeros((0, data.n_features)), np.zeros(0)
    if data.val_size:
        x_rest, x_val, y_rest, y_val = train_test_split(
            x_rest, y_rest, test_size=data.val_size, stratify=y_rest, random_state=seed
        )
    return {
        "train": _split(x_rest, y_rest),
        "val": _split(x_val, y_val),
        "test": _split(x_test, y_test),
    }


def _split(features, labels) -> Split:
    return Split(np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=np.int64))


def save_split(split: Split, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, features=split.features, labels=split.labels)


def load_split(path: Path | str) -> Split:
    """Read a split written by save_split; anything else is a one-line InputError."""
    path = Path(path)
    expected = "an .npz written by `python -m pipeline.generate` (features, labels)"
    try:
        with np.load(path, allow_pickle=False) as archive:
            features, labels = archive["features"], archive["labels"]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; run `dvc repro generate` first") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        raise InputError(f"{path}: unreadable or truncated; expected {expected}") from None
    if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels):
        raise InputError(
            f"{path}: features {features.shape} and labels {labels.shape} do not match; "
            f"expected {expected}"
        )
    if features.dtype != np.float32 or labels.dtype != np.int64:
        raise InputError(
            f"{path}: dtypes {features.dtype}/{labels.dtype}; expected float32/int64 ({expected})"
        )
    return Split(features, labels)


class BatchDataset(Dataset):
    """Serves a whole batch per list of indices: one tensor gather instead of per-item collation.

    Used with a BatchSampler as a DataLoader's sampler, it keeps DataLoader's shuffle, drop_last,
    num_workers and DistributedSampler semantics (the same permutation as the notebook's
    per-item ToyDataset) at a fraction of the per-batch cost.
    """

    def __init__(self, split: Split):
        self.features = torch.from_numpy(split.features)
        self.labels = torch.from_numpy(split.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.features.index_select(0, index), self.labels.index_select(0, index)


class InProcessLoader:
    """What DataLoader(dataset, batch_size, sampler, drop_last) serves with num_workers=0, faster.

    DataLoader's per-batch machinery (index lists, fetcher, collation) costs several times the
    gather itself on a small MLP. This loader draws the epoch's order from the same sampler and
    the same global RNG draws as DataLoader (so the notebook's shuffles are reproduced exactly,
    and a DistributedSampler's shard and set_epoch work as before), then serves each batch with
    one index_select (a view, when the order is sequential).
    """

    def __init__(self, split: Split, batch_size: int, sampler: Sampler, drop_last: bool):
        self.features = torch.from_numpy(split.features)
        self.labels = torch.from_numpy(split.labels)
        self.batch_size, self.sampler, self.drop_last = batch_size, sampler, drop_last

    def __len__(self) -> int:
        whole, rest = divmod(len(self.sampler), self.batch_size)
        return whole + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        # DataLoader draws its workers' base seed from the global RNG when an epoch's iterator
        # is created; drawing it too keeps every later random number (the sampler's shuffle
        # seed, the next epoch's) where the notebook's loader has it.
        torch.empty((), dtype=torch.int64).random_()
        return self._batches()

    def _batches(self):
        # A generator: like DataLoader, the sampler draws its order on the first batch.
        if isinstance(self.sampler, SequentialSampler):
            order = None
        else:
            order = torch.as_tensor(list(self.sampler), dtype=torch.int64)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            if order is None:
                yield (
                    self.features[start : start + self.batch_size],
                    self.labels[start : start + self.batch_size],
                )
                continue
            index = order[start : start + self.batch_size]
            yield self.features.index_select(0, index), self.labels.index_select(0, index)


def make_loader(
    split: Split,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    num_workers: int = 0,
    sampler: Sampler | None = None,
):
    """Batches of (features, labels) with DataLoader's semantics for these arguments."""
    if sampler is None:
        sampler = RandomSampler(range(len(split))) if shuffle else SequentialSampler(split)
    if num_workers == 0:
        return InProcessLoader(split, batch_size, sampler, drop_last)
    return DataLoader(
        BatchDataset(split),
        sampler=BatchSampler(sampler, batch_size, drop_last),
        batch_size=None,  # the sampler already yields whole batches
        num_workers=num_workers,
        persistent_workers=True,
    )

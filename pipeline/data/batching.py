"""Batches of a split for training and evaluation: DataLoader's semantics at the speed of slicing.

torch is imported where batches are made: `generate` needs only numpy and scikit-learn."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.splits import Split

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader, Sampler


class BatchDataset:
    """Serves a whole batch per list of indices: one tensor gather instead of per-item collation.

    Used with a BatchSampler as a DataLoader's sampler, it keeps DataLoader's shuffle, drop_last,
    num_workers and DistributedSampler semantics (the same permutation as the notebook's
    per-item ToyDataset) at a fraction of the per-batch cost. (A map-style dataset for DataLoader
    needs only __getitem__ and __len__.)
    """

    def __init__(self, split: Split):
        import torch

        self.features = torch.from_numpy(split.features)
        self.labels = torch.from_numpy(split.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.features.index_select(0, index), self.labels.index_select(0, index)


class InProcessLoader:
    """What DataLoader(dataset, batch_size, shuffle or sampler, drop_last) serves with
    num_workers=0, at the speed of slicing tensors.

    DataLoader's per-batch machinery (index lists, fetcher, collation) and listing the epoch's
    order index by index cost more than a training step of the small MLP. This loader draws the
    epoch's order exactly as DataLoader does (the same global RNG draws, so the notebook's
    shuffles are reproduced; a given sampler such as DistributedSampler is iterated as is), then
    gathers the rows of many batches at once and serves each batch as a slice of them.
    """

    # Shuffled rows are gathered this many bytes at a time: the fewer gathers the faster (a whole
    # epoch at once is fastest), but memory beyond the data itself stays bounded.
    BLOCK_BYTES = 32 * 2**20

    def __init__(
        self,
        split: Split,
        batch_size: int,
        drop_last: bool,
        shuffle: bool = False,
        sampler: Sampler | None = None,
    ):
        import torch

        self.features = torch.from_numpy(split.features)
        self.labels = torch.from_numpy(split.labels)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.shuffle, self.sampler = shuffle, sampler

    def __len__(self) -> int:
        rows = len(self.sampler) if self.sampler is not None else len(self.labels)
        whole, rest = divmod(rows, self.batch_size)
        return whole + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        import torch

        # DataLoader draws its workers' base seed from the global RNG when an epoch's iterator
        # is created; drawing it too keeps every later random number (the shuffle's seed, the
        # next epoch's) where the notebook's loader has it.
        torch.empty((), dtype=torch.int64).random_()
        return self._batches()

    def _batches(self):
        # A generator: like DataLoader, the order is drawn when the first batch is asked for.
        order = self._order()
        stop = len(self) * self.batch_size
        row_bytes = max(1, self.features[:1].nbytes)
        block = self.batch_size * max(1, self.BLOCK_BYTES // row_bytes // self.batch_size)
        for first in range(0, stop, block):
            if order is None:  # sequential: slices of the data themselves, no copy
                features, labels = self.features, self.labels
                offset = first
            else:
                index = order[first : min(first + block, stop)]
                features = self.features.index_select(0, index)
                labels = self.labels.index_select(0, index)
                offset = 0
            for start in range(offset, offset + min(block, stop - first), self.batch_size):
                end = start + self.batch_size
                yield features[start:end], labels[start:end]

    def _order(self) -> torch.Tensor | None:
        import torch

        if self.sampler is not None:
            return torch.from_numpy(np.fromiter(self.sampler, np.int64, len(self.sampler)))
        if not self.shuffle:
            return None
        # DataLoader(shuffle=True) iterates a RandomSampler: one permutation from a generator
        # seeded with one draw from the global RNG (tests compare both, epoch after epoch).
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(len(self.labels), generator=generator)


def make_loader(
    split: Split,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    num_workers: int = 0,
    sampler: Sampler | None = None,
) -> InProcessLoader | DataLoader:
    """Batches of (features, labels) with DataLoader's semantics for these arguments."""
    if num_workers == 0:
        return InProcessLoader(split, batch_size, drop_last, shuffle, sampler)
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    if sampler is None:
        sampler = RandomSampler(range(len(split))) if shuffle else SequentialSampler(split)
    return DataLoader(
        BatchDataset(split),
        sampler=BatchSampler(sampler, batch_size, drop_last),
        batch_size=None,  # the sampler already yields whole batches
        num_workers=num_workers,
        persistent_workers=True,
    )

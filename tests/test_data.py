from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pipeline.config.params import build
from pipeline.config.rules import split_sizes
from pipeline.config.schema import DataParams
from pipeline.data.batching import make_loader
from pipeline.data.splits import Split, load_split, save_split
from pipeline.data.synthetic import TOY_TEST, TOY_TRAIN, generate
from pipeline.process.errors import InputError


class NotebookToyDataset(Dataset):
    """The notebook's per-item ToyDataset, the reference for batching semantics."""

    def __init__(self, x, y):
        self.features, self.labels = x, y

    def __getitem__(self, index):
        return self.features[index], self.labels[index]

    def __len__(self):
        return self.labels.shape[0]


def test_toy_set_is_the_notebooks():
    splits = generate(DataParams(kind="toy", val_size=0.0), seed=0)
    # The notebook builds them with torch.tensor(), float32.
    assert np.array_equal(splits["train"].features, torch.tensor(TOY_TRAIN[0]).numpy())
    assert splits["train"].labels.tolist() == [0, 0, 0, 1, 1]
    assert splits["test"].labels.tolist() == TOY_TEST[1]
    assert len(splits["val"]) == 0


def test_classification_splits_have_the_promised_sizes_and_classes():
    data = build({"data": {"n_samples": 900, "n_features": 12, "n_classes": 3}}).data
    splits = generate(data, seed=5)
    assert {k: len(v) for k, v in splits.items()} == split_sizes(data)
    for split in splits.values():
        assert split.features.shape[1] == 12
        assert set(split.labels.tolist()) == {0, 1, 2}  # stratified: every class everywhere
    again = generate(data, seed=5)
    assert np.array_equal(again["train"].features, splits["train"].features)


def test_save_and_load_round_trip(tmp_path):
    split = generate(DataParams(kind="toy", val_size=0.0), seed=0)["train"]
    save_split(split, tmp_path / "train.npz")
    loaded = load_split(tmp_path / "train.npz")
    assert np.array_equal(loaded.features, split.features)
    assert np.array_equal(loaded.labels, split.labels)
    assert [p.name for p in tmp_path.iterdir()] == ["train.npz"]  # no temporary left behind


def test_truncated_or_foreign_files_are_refused(tmp_path):
    split = generate(DataParams(kind="toy", val_size=0.0), seed=0)["train"]
    save_split(split, tmp_path / "train.npz")
    whole = (tmp_path / "train.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"cut.npz: unreadable or truncated"):
        load_split(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="other.npz"):
        load_split(tmp_path / "other.npz")
    with pytest.raises(InputError, match="missing.npz: file not found"):
        load_split(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    ("shuffle", "drop_last", "batch_size"), [(True, True, 2), (True, False, 2), (False, False, 3)]
)
def test_batch_loader_serves_what_the_notebook_loader_serves(shuffle, drop_last, batch_size):
    split = generate(DataParams(kind="toy", val_size=0.0), seed=0)["train"]
    x, y = torch.from_numpy(split.features), torch.from_numpy(split.labels)
    reference = DataLoader(
        NotebookToyDataset(x, y), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last
    )
    ours = make_loader(split, batch_size, shuffle=shuffle, drop_last=drop_last)
    assert len(ours) == len(reference)
    for epoch in range(3):
        torch.manual_seed(epoch)
        expected = [(bx.clone(), by.clone()) for bx, by in reference]
        torch.manual_seed(epoch)
        got = list(ours)
        assert len(got) == len(expected)
        for (gx, gy), (ex, ey) in zip(got, expected, strict=True):
            assert torch.equal(gx, ex)
            assert torch.equal(gy, ey)


def batches_of(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(bx.clone(), by.clone()) for bx, by in loader]


def assert_same_batches(got, expected):
    assert len(got) == len(expected)
    for (gx, gy), (ex, ey) in zip(got, expected, strict=True):
        assert torch.equal(gx, ex)
        assert torch.equal(gy, ey)


def reference_loader(split, batch_size, **kwargs):
    x, y = torch.from_numpy(split.features), torch.from_numpy(split.labels)
    return DataLoader(NotebookToyDataset(x, y), batch_size=batch_size, **kwargs)


@pytest.mark.parametrize(("shuffle", "drop_last"), [(True, True), (True, False), (False, False)])
def test_epochs_in_a_row_draw_the_notebook_loaders_random_stream(shuffle, drop_last):
    # Training does not reseed between epochs: each epoch must continue the global RNG exactly
    # where DataLoader leaves it, and so must whatever draws random numbers after the loop.
    split = _random_split(103, seed=1)
    reference = reference_loader(split, 10, shuffle=shuffle, drop_last=drop_last)
    ours = make_loader(split, 10, shuffle=shuffle, drop_last=drop_last)
    assert len(ours) == len(reference)
    torch.manual_seed(123)
    expected = [batches_of(reference) for _ in range(3)] + [torch.rand(3)]
    torch.manual_seed(123)
    got = [batches_of(ours) for _ in range(3)] + [torch.rand(3)]
    for epoch in range(3):
        assert_same_batches(got[epoch], expected[epoch])
    assert torch.equal(got[3], expected[3])


@pytest.mark.parametrize("rank", [0, 1])
def test_a_distributed_sampler_shards_and_reshuffles_per_epoch_as_dataloader_does(rank):
    split = _random_split(50, seed=2)
    sampler = DistributedSampler(range(50), num_replicas=2, rank=rank, shuffle=True, seed=9)
    reference = reference_loader(split, 4, sampler=sampler, drop_last=False)
    ours = make_loader(split, 4, drop_last=False, sampler=sampler)
    assert len(ours) == len(reference) == 7  # 25 samples per rank
    for epoch in range(2):
        sampler.set_epoch(epoch)
        assert_same_batches(batches_of(ours), batches_of(reference))


def test_worker_processes_serve_the_same_batches():
    split = _random_split(40, seed=3)
    reference = reference_loader(split, 8, shuffle=True, drop_last=True)
    ours = make_loader(split, 8, shuffle=True, drop_last=True, num_workers=1)
    torch.manual_seed(5)
    expected = batches_of(reference)
    torch.manual_seed(5)
    assert_same_batches(batches_of(ours), expected)


def _random_split(n: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, 3, generator=generator)
    labels = torch.randint(0, 3, (n,), generator=generator)
    return Split(features.numpy(), labels.numpy())

"""Data path: the pipeline's training throughput against a bare loop over pre-sliced tensors.

100,000 training samples (50 features, 3 classes), the 50-30-20-3 MLP and SGD, at batch 32
and 256. Three ways to feed the same training step:
  bare      a list of (features[i:i+b], labels[i:i+b]) sliced before the clock starts
  pipeline  pipeline.data.synthetic.make_loader (shuffle, drop_last) through engine.train_epoch
  per-item  the notebook's per-item Dataset in a torch DataLoader (shuffle, drop_last)
Bare and pipeline alternate and the median of their per-pair ratios is reported, because the
machine is shared.

    python benchmarks/data_path.py [--repeats 5] [--quick]

The last line is `ratio=<pipeline/bare samples per CPU second, the lower of the two batch
sizes>`; the wall-clock ratio is printed above it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from pipeline.config.params import build
from pipeline.data.batching import make_loader
from pipeline.data.synthetic import generate
from pipeline.model.network import Architecture, build_model
from pipeline.training.loop import make_optimizer, train_epoch

DATA = {"n_samples": 125_000, "n_features": 50, "n_classes": 3, "test_size": 0.2, "val_size": 0.0}
CPU = torch.device("cpu")


class PerItem(Dataset):
    """The notebook's ToyDataset: one (features, label) pair per index."""

    def __init__(self, features, labels):
        self.features, self.labels = features, labels

    def __getitem__(self, index):
        return self.features[index], self.labels[index]

    def __len__(self):
        return self.labels.shape[0]


# On the shared 2-core machine torch's default of one intra-op thread per core makes this small
# MLP's training itself 10-30x slower and erratic whenever other processes run (OpenMP threads
# wait for each other); one thread measures the data path or the tracking, not that contention.
THREADS_HELP = "torch intra-op threads (default 1; 0 keeps torch's default)"


def fresh_model():
    torch.manual_seed(0)
    model = build_model(Architecture(50, (30, 20), 3))
    return model, make_optimizer("sgd", model.parameters(), 0.1)


class Clock:
    """Wall and CPU seconds of a block; rates in samples per second of each."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, samples: int) -> tuple[float, float]:
        return samples / self.wall, samples / self.cpu


def bare(features, labels, batch_size: int, epochs: int) -> tuple[float, float]:
    """The minimal loop over batches sliced before the clock starts."""
    batches = [
        (features[i : i + batch_size], labels[i : i + batch_size])
        for i in range(0, len(labels) - batch_size + 1, batch_size)
    ]
    model, optimizer = fresh_model()
    model.train()
    with Clock() as clock:
        for _ in range(epochs):
            for x, y in batches:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss.item()
    return clock.rates(epochs * len(batches) * batch_size)


def through_engine(loader, batch_size: int, epochs: int) -> tuple[float, float]:
    """The pipeline's loop (engine.train_epoch) over `loader`."""
    model, optimizer = fresh_model()
    with Clock() as clock:
        steps = sum(len(train_epoch(model, loader, optimizer, CPU)) for _ in range(epochs))
    return clock.rates(steps * batch_size)


# --quick: a smoke run of every code path in seconds (the test suite runs it so that an import
# or an argument break fails `make test`); its figures mean nothing.
QUICK_SAMPLES = 2_500


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement")
    parser.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    parser.add_argument("--quick", action="store_true", help="2,000 samples, 2 pairs, 1 epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs = 2, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = {**DATA, "n_samples": QUICK_SAMPLES} if args.quick else DATA
    split = generate(build({"data": data}).data, seed=123)["train"]
    features, labels = torch.from_numpy(split.features), torch.from_numpy(split.labels)
    print(
        f"{len(split)} samples, torch threads {torch.get_num_threads()},"
        f" {args.epochs} epochs per measurement (per-item: 1)"
    )
    lowest = {"wall": float("inf"), "cpu": float("inf")}
    for batch_size in (32, 256):
        runs = {"bare": [], "pipeline": []}
        for repeat in range(args.repeats):
            # Alternate the order so that a drift in the machine's load hits both alike.
            for name in ("bare", "pipeline") if repeat % 2 == 0 else ("pipeline", "bare"):
                if name == "bare":
                    runs[name].append(bare(features, labels, batch_size, args.epochs))
                else:
                    loader = make_loader(split, batch_size, shuffle=True, drop_last=True)
                    runs[name].append(through_engine(loader, batch_size, args.epochs))
        per_item = DataLoader(
            PerItem(features, labels), batch_size=batch_size, shuffle=True, drop_last=True
        )
        item_wall, item_cpu = through_engine(per_item, batch_size, epochs=1)
        print(f"batch {batch_size}:")
        for clock, column in (("wall", 0), ("cpu", 1)):
            plain = [run[column] for run in runs["bare"]]
            ours = [run[column] for run in runs["pipeline"]]
            ratios = [o / p for o, p in zip(ours, plain, strict=True)]
            ratio = statistics.median(ratios)
            lowest[clock] = min(lowest[clock], ratio)
            item = item_wall if clock == "wall" else item_cpu
            print(
                f"  {clock:4} samples/s: bare median {statistics.median(plain):,.0f}"
                f" (min {min(plain):,.0f}, max {max(plain):,.0f}),"
                f" pipeline median {statistics.median(ours):,.0f}"
                f" (min {min(ours):,.0f}, max {max(ours):,.0f}),"
                f" per-item Dataset+DataLoader {item:,.0f} ({item / statistics.median(plain):.2f})"
            )
            print(
                f"       pipeline/bare per pair {', '.join(f'{r:.2f}' for r in ratios)};"
                f" median {ratio:.3f}"
            )
    print(f"pipeline/bare, lower of the two batch sizes: wall {lowest['wall']:.3f}")
    # Single-threaded work: on a quiet machine wall time equals CPU time, and on a shared one
    # CPU time leaves out the waits for a core that other processes cause.
    print(f"ratio={lowest['cpu']:.3f}")


if __name__ == "__main__":
    main()

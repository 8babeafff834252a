"""Tracking overhead: per-batch `train_loss` into the embedded SQLite store, against none.

The reference workload of issue 3: classification data with 20,000 training samples, 50
features and 3 classes, the 50-30-20-3 MLP, batch 32, 5 epochs = 3,125 batches, every batch
logged. Timed: the training loop plus the tracker's end (the final flush: the sender drains the
spool, then the run is marked FINISHED). Opening the run is timed apart. Tracked and untracked
(`PIPELINE_TRACKING=0`) runs alternate and the medians are reported, because the machine is
shared; MLflow's naive per-step `mlflow.log_metric` is timed beside them. Every tracked run is
read back: 3,125 points in step order, equal to the losses computed.

    python benchmarks/tracking.py [--repeats 5] [--naive-repeats 1] [--quick]

The last line is `ratio=<median of tracked/untracked over the pairs>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from pipeline import tracking
from pipeline.config.params import build
from pipeline.data.batching import make_loader
from pipeline.data.synthetic import generate
from pipeline.model.network import Architecture, build_model
from pipeline.runtime.threads import leave_a_core
from pipeline.training.loop import fit, make_optimizer
from pipeline.training.work import LossHistory

# 25,000 samples, a fifth held out for test, no validation split: 20,000 training samples.
DATA = {"n_samples": 25_000, "n_features": 50, "n_classes": 3, "test_size": 0.2, "val_size": 0.0}
TRAIN = {"epochs": 5, "batch_size": 32, "log_every": 1, "device": "cpu"}
PARAMS = build({"data": DATA, "train": TRAIN})
# --quick: a smoke run of every code path in seconds (the test suite runs it so that an import
# or an argument break fails `make test`); its figures mean nothing.
QUICK_PARAMS = build({"data": {**DATA, "n_samples": 1_000}, "train": TRAIN})

# On the shared 2-core machine torch's default of one intra-op thread per core makes this small
# MLP's training itself 10-30x slower and erratic whenever other processes run (OpenMP threads
# wait for each other); one thread measures the data path or the tracking, not that contention.
THREADS_HELP = (
    "torch intra-op threads (default 1; 0: the train stage's policy, one per core but one, "
    "for both sides)"
)


def train(split, tracker, on_batch=None, epochs=None) -> tuple[float, list[float]]:
    """Seconds for fit() plus the tracker's end, and the losses computed."""
    cfg = PARAMS.train
    torch.manual_seed(PARAMS.seed)
    model = build_model(Architecture(50, PARAMS.model.hidden, 3))
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    loader = make_loader(split, cfg.batch_size, cfg.shuffle, cfg.drop_last, cfg.num_workers)
    history = LossHistory(cfg.log_every, tracker)
    start = time.perf_counter()
    fit(
        model,
        loader,
        optimizer,
        torch.device("cpu"),
        epochs or cfg.epochs,
        on_batch=on_batch or history,
        on_epoch=lambda epoch, loss: tracker.log_metric("epoch_loss", loss, step=epoch),
    )
    tracker.end("FINISHED")
    return time.perf_counter() - start, history.losses


def untracked(split) -> float:
    os.environ["PIPELINE_TRACKING"] = "0"
    seconds, _ = train(split, tracking.start_run(PARAMS.flat(), {}))
    os.environ.pop("PIPELINE_TRACKING")
    return seconds


def tracked(split, opening: list[float]) -> float:
    import mlflow

    start = time.perf_counter()
    tracker = tracking.start_run(PARAMS.flat(), {"benchmark": "tracking"})
    opening.append(time.perf_counter() - start)
    seconds, losses = train(split, tracker)
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    points = sorted(client.get_metric_history(tracker.run_id, "train_loss"), key=lambda m: m.step)
    assert [p.step for p in points] == list(range(len(losses))), "steps missing or out of order"
    assert [p.value for p in points] == losses, "stored losses differ from the computed ones"
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    return seconds


def naive(split, epochs: int) -> float:
    """MLflow's PyTorch guide: mlflow.log_metric(..., step=...) in the loop."""
    import mlflow

    with mlflow.start_run(log_system_metrics=False):
        seconds, _ = train(
            split,
            tracking.NullTracker(),
            on_batch=lambda step, loss: mlflow.log_metric("train_loss", loss, step),
            epochs=epochs,
        )
        start = time.perf_counter()
    return seconds + time.perf_counter() - start  # end_run is part of its final flush


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=1)
    parser.add_argument(
        "--naive-epochs",
        type=int,
        default=1,
        help="epochs of the naive run (about 10-20 ms per batch); its ratio is against the "
        "same share of the untracked time",
    )
    parser.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    parser.add_argument("--quick", action="store_true", help="800 samples, 1 pair, 1 naive epoch")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.naive_repeats, args.naive_epochs = 1, 1, 1
    return args


def main(argv: list[str] | None = None) -> None:
    global PARAMS  # the workload every function below trains on
    args = parse_args(argv)
    if args.quick:
        PARAMS = QUICK_PARAMS
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        leave_a_core(torch.device("cpu"))  # as the train stage does, tracked or not
    workdir = Path(tempfile.mkdtemp(prefix="bench-tracking-"))
    os.environ.update(
        DVC_ROOT=str(workdir),  # the spool directory lives under the repository root
        MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}",
        MLFLOW_EXPERIMENT_NAME="benchmark",
    )
    split = generate(PARAMS.data, PARAMS.seed)["train"]
    batches = PARAMS.train.epochs * (len(split) // PARAMS.train.batch_size)
    print(f"workload: {len(split)} samples, batch 32, 5 epochs = {batches} batches, log_every 1")
    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, store: {workdir}")
    if not args.quick:  # the smoke run's figures mean nothing: no warm-up
        tracked(split, [])  # warm-up: imports, store creation, caches
        untracked(split)
    plain, spooled, opening = [], [], []
    for repeat in range(args.repeats):
        # Alternate the order so that a drift in the machine's load hits both alike.
        if repeat % 2:
            spooled.append(tracked(split, opening))
            plain.append(untracked(split))
        else:
            plain.append(untracked(split))
            spooled.append(tracked(split, opening))
        print(f"  pair {repeat + 1}: untracked {plain[-1]:.3f} s, tracked {spooled[-1]:.3f} s")
    naive_times = [naive(split, args.naive_epochs) for _ in range(args.naive_repeats)]
    ratios = [t / u for t, u in zip(spooled, plain, strict=True)]
    median_plain = statistics.median(plain)
    print(
        f"untracked:      median {median_plain:.3f} s  (min {min(plain):.3f}, max {max(plain):.3f})"
    )
    print(
        f"tracked:        median {statistics.median(spooled):.3f} s"
        f"  (min {min(spooled):.3f}, max {max(spooled):.3f}); every run read back: "
        f"{batches} points in step order, equal to the losses computed"
    )
    print(f"opening a run:  median {statistics.median(opening):.3f} s (not in the ratio)")
    if naive_times:
        share = args.naive_epochs / PARAMS.train.epochs
        print(
            f"naive log_metric, {args.naive_epochs} epoch(s): "
            f"{', '.join(f'{t:.2f}' for t in naive_times)} s; ratio "
            f"{statistics.median(naive_times) / (share * median_plain):.2f} (against the same "
            f"share of the untracked median)"
        )
    print(f"tracked/untracked per pair: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"ratio={statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()

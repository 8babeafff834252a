"""Stage `train`: fit the MLP, record the run in MLflow, write the checkpoint and loss curve."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from pipeline import checkpoint, distributed, plots, tracking
from pipeline.data import Split, load_split, make_loader
from pipeline.engine import evaluate_loss_accuracy, fit, make_optimizer
from pipeline.errors import exits_cleanly
from pipeline.files import sha256_of, write_json, write_text
from pipeline.model import Architecture, build_model
from pipeline.params import Params, load_params
from pipeline.progress import Progress


def run(
    *, params: Params, data_dir: Path, checkpoint_path: Path, metrics_path: Path, plots_dir: Path
) -> dict:
    runtime = distributed.setup(params.train.device)
    split_paths = [data_dir / "train.npz", data_dir / "val.npz"]
    train_split, val_split = (load_split(path) for path in split_paths)
    arch = Architecture(
        num_inputs=train_split.features.shape[1],
        hidden=params.model.hidden,
        num_outputs=int(max(train_split.labels.max(), val_split.labels.max(initial=0))) + 1,
    )
    # The notebook's order: seed, build the model, then let the loader draw its shuffles.
    torch.manual_seed(params.seed)
    model = build_model(arch).to(runtime.device)
    optimizer = make_optimizer(params.train.optimizer, model.parameters(), params.train.lr)
    cfg = params.train
    loader = make_loader(train_split, cfg.batch_size, cfg.shuffle, cfg.drop_last, cfg.num_workers)

    tags = {
        "data.sha256": sha256_of(split_paths),
        "device": str(runtime.device),
        "strategy": cfg.strategy,
        "world_size": str(runtime.world_size),
    }
    tracker = tracking.start_run(params.flat(), tags) if runtime.is_main else tracking.NullTracker()
    leave_a_core_to_the_sender(runtime.device, tracker)
    history = LossHistory(cfg.log_every, tracker)
    progress = Progress(cfg.epochs, len(loader))
    with tracking.run_status(tracker):
        epoch_end = EpochEnd(tracker, model, val_split, runtime.device, progress)
        result = fit(
            model,
            loader,
            optimizer,
            runtime.device,
            cfg.epochs,
            on_batch=lambda step, loss: (history(step, loss), progress.batch(step, loss)),
            on_epoch=epoch_end,
        )
        progress.close()
        summary = {
            "mlflow_run_id": tracker.run_id,
            "final_loss": result.last_loss,
            "epoch_loss": result.epoch_losses[-1],
            "steps": result.steps,
            **epoch_end.last_validation,
        }
        _write_outputs(model, arch, history, summary, checkpoint_path, metrics_path, plots_dir)
        tracker.log_artifact(plots_dir / "loss.png", "plots")
    return summary


def leave_a_core_to_the_sender(device: torch.device, tracker) -> None:
    """Training on CPU leaves one core to the run's metric sender (a process of its own).

    torch takes every core by default; on a 2-core machine the sender then competes with
    torch's threads, and tracked training took 1.7x as long (benchmarks/README.md). An explicit
    OMP_NUM_THREADS is the user's choice and stays.
    """
    if device.type == "cpu" and tracker.run_id and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, torch.get_num_threads() - 1))


class LossHistory:
    """Every `log_every`-th batch loss: kept for the loss plot and sent to the tracker."""

    def __init__(self, log_every: int, tracker):
        self.log_every, self.tracker = log_every, tracker
        self.steps: list[int] = []
        self.losses: list[float] = []

    def __call__(self, step: int, loss: float) -> None:
        if step % self.log_every:
            return
        self.steps.append(step)
        self.losses.append(loss)
        self.tracker.log_batch_loss(step, loss)


class EpochEnd:
    """Per epoch: `epoch_loss`, and `val_loss`/`val_accuracy` when there is a validation split."""

    def __init__(self, tracker, model, val_split: Split, device, progress: Progress):
        self.tracker, self.model, self.device, self.progress = tracker, model, device, progress
        self.val_loader = make_loader(val_split, batch_size=1024) if len(val_split) else None
        self.last_validation: dict[str, float] = {}

    def __call__(self, epoch: int, epoch_loss: float) -> None:
        self.tracker.log_metric("epoch_loss", epoch_loss, step=epoch)
        if self.val_loader is None:
            return
        val_loss, val_accuracy = evaluate_loss_accuracy(self.model, self.val_loader, self.device)
        self.tracker.log_metric("val_loss", val_loss, step=epoch)
        self.tracker.log_metric("val_accuracy", val_accuracy, step=epoch)
        self.last_validation = {"val_loss": val_loss, "val_accuracy": val_accuracy}
        self.progress.note(f"epoch {epoch + 1}: val_loss {val_loss:.4f} val_acc {val_accuracy:.4f}")


def _write_outputs(model, arch, history, summary, checkpoint_path, metrics_path, plots_dir):
    checkpoint.save(model, arch, checkpoint_path)
    rows = "".join(f"{s},{loss!r}\n" for s, loss in zip(history.steps, history.losses, strict=True))
    write_text(plots_dir / "loss.csv", "step,train_loss\n" + rows)
    plots.loss_curve(history.steps, history.losses, plots_dir / "loss.png")
    # Last: its run id is what evaluate and export log into.
    write_json(metrics_path, summary)


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/checkpoint.pth"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/train.json"))
    parser.add_argument("--plots", type=Path, default=Path("plots"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    try:
        summary = run(
            params=params,
            data_dir=args.data,
            checkpoint_path=args.checkpoint,
            metrics_path=args.metrics,
            plots_dir=args.plots,
        )
    except KeyboardInterrupt as exc:
        print(f"error: training interrupted ({exc or 'SIGINT'})", file=sys.stderr)
        return 143 if isinstance(exc, tracking.Interrupted) else 130
    print(f"trained {summary['steps']} steps, final loss {summary['final_loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

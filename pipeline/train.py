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
from pipeline.errors import BAD_INPUT_EXIT, InputError, exits_cleanly
from pipeline.files import all_or_nothing, sha256_of, write_json, write_text
from pipeline.model import Architecture, build_model
from pipeline.params import Params, batches_problem, load_params
from pipeline.progress import Progress

# The run that the DDP launcher opened, for its rank 0 worker to log into.
RUN_ID_VARIABLE = "PIPELINE_MLFLOW_RUN_ID"


def run(
    *, params: Params, data_dir: Path, checkpoint_path: Path, metrics_path: Path, plots_dir: Path
) -> dict:
    """Train in this process: alone, or as one DDP worker (rank 0 alone tracks and writes)."""
    with distributed.setup(params.train.device, params.train.strategy) as runtime:
        return _train(runtime, params, data_dir, checkpoint_path, metrics_path, plots_dir)


def _train(runtime, params, data_dir, checkpoint_path, metrics_path, plots_dir) -> dict:
    cfg = params.train
    split_paths = [data_dir / "train.npz", data_dir / "val.npz"]
    train_split, val_split = (load_split(path) for path in split_paths)
    _check_same_width(train_split, val_split, split_paths)
    if problem := batches_problem(cfg, len(train_split)):
        raise InputError(f"{split_paths[0]}: {problem}")
    arch = Architecture(
        num_inputs=train_split.features.shape[1],
        hidden=params.model.hidden,
        num_outputs=len(train_split.classes),
        features=train_split.feature_names,
        classes=train_split.classes,
        standardize=train_split.standardize,
    )
    # The notebook's order: seed, build the model, then let the loader draw its shuffles.
    torch.manual_seed(params.seed)
    model = build_model(arch)
    if model.standardize is not None:  # the training rows' statistics only
        model.standardize.fit(torch.from_numpy(train_split.features))
    model = runtime.wrap(model.to(runtime.device))
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    sampler = runtime.sampler(train_split, cfg.shuffle, params.seed, cfg.drop_last)
    loader = make_loader(
        train_split, cfg.batch_size, cfg.shuffle, cfg.drop_last, cfg.num_workers, sampler
    )
    # A table's own digest (what `sha256sum` prints); generated sets: the splits' files.
    data_digest = train_split.source_sha256 or sha256_of(split_paths)
    tags = {"data.sha256": data_digest, "data.source": train_split.source, **runtime.tags()}
    tracker = _open_run(runtime, params, tags)
    tracker.log_datasets(
        [train_split.as_dataset("train", "training")]
        + ([val_split.as_dataset("val", "validation")] if len(val_split) else [])
    )
    leave_a_core_to_the_sender(runtime.device, tracker)
    history = LossHistory(cfg.log_every, tracker)
    with tracking.run_status(tracker):
        # Rank 0 alone prints, validates and records; the other ranks only train.
        progress = Progress(cfg.epochs, len(loader)) if runtime.is_main else None
        epoch_end = EpochEnd(tracker, runtime.unwrap(model), val_split, runtime.device, progress)

        def on_batch(step: int, loss: float) -> None:
            history(step, loss)
            progress.batch(step, loss)

        result = fit(
            model,
            loader,
            optimizer,
            runtime.device,
            cfg.epochs,
            on_batch=on_batch if runtime.is_main else None,
            on_epoch=epoch_end if runtime.is_main else None,
            before_epoch=lambda epoch: runtime.start_epoch(sampler, epoch),
            reduce_loss=runtime.reduce_loss,
        )
        if progress:
            progress.close()
        runtime.barrier()  # nothing is written unless every rank has finished training
        summary = {
            "mlflow_run_id": tracker.run_id,
            "final_loss": result.last_loss,
            "epoch_loss": result.epoch_losses[-1],
            "steps": result.steps,
            **epoch_end.last_validation,
        }
        if runtime.is_main:
            model = runtime.unwrap(model)
            _write_outputs(model, arch, history, summary, checkpoint_path, metrics_path, plots_dir)
            tracker.log_artifact(plots_dir / "loss.png", "plots")
    return summary


def launch(*, params: Params, data_dir: Path, worker_args: list[str]) -> None:
    """`strategy: ddp` started by DVC or by hand: run train.nproc workers here, own their run.

    The launcher opens the MLflow run and ends it, FAILED with the failing rank named if any
    worker fails (rank 0 logs into it), so no run is left RUNNING even if a worker is killed.
    """
    layout = distributed.plan_launch(params.train.device, params.train.nproc)
    split_paths = [data_dir / "train.npz", data_dir / "val.npz"]
    for path in split_paths:
        load_split(path)  # bad data stops here, before any process or run starts
    tracker = tracking.start_run(params.flat(), layout.tags())
    env = {RUN_ID_VARIABLE: tracker.run_id or ""}  # empty: tracking is off
    with tracking.run_status(tracker):
        try:
            distributed.launch_workers(layout.nproc, worker_args, env)
        except distributed.WorkerFailed as failure:
            tracker.set_tags(
                {"failed_rank": str(failure.rank), "mlflow.note.content": str(failure)}
            )
            raise


def _open_run(runtime: distributed.Runtime, params: Params, tags: dict[str, str]):
    """Rank 0: the launcher's run when it opened one, else a new run. Other ranks: none."""
    if not runtime.is_main:
        return tracking.NullTracker()
    launcher_run = os.environ.get(RUN_ID_VARIABLE)
    if not launcher_run:
        return tracking.start_run(params.flat(), tags)
    tracker = tracking.resume_run(launcher_run, stream=True)
    tracker.set_tags(tags)
    return tracker


def _check_same_width(train_split: Split, val_split: Split, paths: list[Path]) -> None:
    width, val_width = train_split.features.shape[1], val_split.features.shape[1]
    if len(val_split) and val_width != width:
        raise InputError(f"{paths[1]}: {val_width} features; expected {width} as in {paths[0]}")


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

    def __init__(self, tracker, model, val_split: Split, device, progress: Progress | None):
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
        if self.progress:
            note = f"epoch {epoch + 1}: val_loss {val_loss:.4f} val_acc {val_accuracy:.4f}"
            self.progress.note(note)


def _write_outputs(model, arch, history, summary, checkpoint_path, metrics_path, plots_dir):
    # As one: an interruption while writing leaves the previous set whole, not half replaced.
    with all_or_nothing():
        checkpoint.save(model, arch, checkpoint_path)
        rows = "".join(
            f"{s},{loss!r}\n" for s, loss in zip(history.steps, history.losses, strict=True)
        )
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
        if distributed.launches_workers(params.train.strategy):
            worker_args = sys.argv[1:] if argv is None else argv
            launch(params=params, data_dir=args.data, worker_args=worker_args)
            return 0
        summary = run(
            params=params,
            data_dir=args.data,
            checkpoint_path=args.checkpoint,
            metrics_path=args.metrics,
            plots_dir=args.plots,
        )
    except KeyboardInterrupt as exc:
        name, code = ("SIGTERM", 143) if isinstance(exc, tracking.Interrupted) else ("SIGINT", 130)
        print(f"error: training interrupted by {name}", file=sys.stderr)
        return code
    except distributed.WorkerFailed as failure:
        print(f"error: training failed: {failure}", file=sys.stderr)
        return failure.exitcode if failure.exitcode == BAD_INPUT_EXIT else 1
    if distributed.is_main_process():
        print(f"trained {summary['steps']} steps, final loss {summary['final_loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

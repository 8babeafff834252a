"""The train stage's work: fit the MLP, record the run, write the checkpoint and loss curve.

Imports torch; pipeline/stages/train.py (the entry point) imports this module only once the tracking
agent has started, so that MLflow's import there overlaps torch's here.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config.rules import batches_problem
from pipeline.config.schema import Params
from pipeline.data.splits import Split, check_width, load_split
from pipeline.model import checkpoint
from pipeline.process.errors import InputError
from pipeline.process.files import all_or_nothing, sha256_of, write_json, write_text
from pipeline.reports import plots
from pipeline.runtime import distributed
from pipeline.runtime.threads import leave_a_core
from pipeline.tracking.runs import NullTracker, resume_run, run_status, start_run
from pipeline.training.early_stopping import EarlyStopping
from pipeline.training.loop import evaluate_loss_accuracy
from pipeline.training.progress import Progress
from pipeline.training.setup import prepare, validation_loader

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
    width = train_split.features.shape[1]
    check_width(val_split, split_paths[1], width, f"expected {width} as in {split_paths[0]}")
    if problem := batches_problem(cfg, len(train_split)):
        raise InputError(f"{split_paths[0]}: {problem}")
    # A table's own digest (what `sha256sum` prints); generated sets: the splits' files.
    data_digest = train_split.source_sha256 or sha256_of(split_paths)
    tags = {
        "data.name": train_split.data_name,  # the run's name and the UI's grouping (tracking.md)
        "data.sha256": data_digest,
        "data.source": train_split.source,
        **runtime.tags(),
    }
    if train_split.encoding:  # a table's rows left out by generate
        tags["data.rows_without_target"] = str(train_split.rows_without_target)
    built = []

    def set_up() -> None:
        # Model, optimizer (its first one imports torch._dynamo) and loader, and matplotlib for
        # the loss plot at the end: while the agent creates the run, not after.
        built.append(
            prepare(params=params, train_split=train_split, val_split=val_split, runtime=runtime)
        )
        if runtime.is_main:
            plots.warm_up()

    tracker = _open_run(runtime, params, tags, meanwhile=set_up)
    fitting = built[0]
    model, loader, arch = fitting.model, fitting.loader, fitting.arch
    tracker.log_datasets(
        [train_split.as_dataset("train", "training")]
        + ([val_split.as_dataset("val", "validation")] if len(val_split) else [])
    )
    leave_a_core(runtime.device)
    history = LossHistory(cfg.log_every, tracker)
    with run_status(tracker):
        # Rank 0 alone prints, validates and records; the other ranks only train.
        progress = Progress(cfg.epochs, len(loader)) if runtime.is_main else None
        stopper = EarlyStopping(cfg.early_stopping) if cfg.early_stopping else None
        epoch_end = EpochEnd(
            tracker, runtime.unwrap(model), val_split, runtime.device, progress, stopper
        )

        def on_batch(step: int, loss: float) -> None:
            history(step, loss)
            progress.batch(step, loss)

        result = fitting.run(
            on_batch=on_batch if runtime.is_main else None,
            on_epoch=epoch_end if runtime.is_main else None,
            # Off (the default): no collective per epoch, the loop exactly as before.
            stop=(lambda _: runtime.decided_by_main(stopper.should_stop)) if stopper else None,
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
            if stopper:
                summary.update(_keep_the_best(stopper, model, tracker))
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
    # Bad data stops here, before any process or run starts.
    train_split, _ = (load_split(path) for path in split_paths)
    tags = {"data.name": train_split.data_name, **layout.tags()}
    # Rank 0 samples its node's system metrics; the launcher, which only waits, does not.
    tracker = start_run(params.flat(), tags, system_metrics=False)
    env = {RUN_ID_VARIABLE: tracker.run_id or ""}  # empty: tracking is off
    with run_status(tracker):
        try:
            distributed.launch_workers(layout.nproc, worker_args, env)
        except distributed.WorkerFailed as failure:
            tracker.set_tags(
                {"failed_rank": str(failure.rank), "mlflow.note.content": str(failure)}
            )
            raise


def _open_run(runtime: distributed.Runtime, params: Params, tags: dict[str, str], meanwhile):
    """Rank 0: the launcher's run when it opened one, else a new run. Other ranks: none.
    `meanwhile` is done in every case: while the agent opens the run, when there is one."""
    if not runtime.is_main:
        meanwhile()
        return NullTracker()
    launcher_run = os.environ.get(RUN_ID_VARIABLE)
    if not launcher_run:
        return start_run(params.flat(), tags, meanwhile=meanwhile)
    tracker = resume_run(launcher_run, system_metrics=True, meanwhile=meanwhile)
    tracker.set_tags(tags)
    return tracker


def _keep_the_best(stopper: EarlyStopping, model, tracker) -> dict:
    """The best epoch's weights back into `model` (they are the checkpoint), and what to record:
    best_epoch, epochs_trained, and that epoch's val_loss/val_accuracy (the checkpoint's)."""
    stopper.restore(model)
    figures = {**stopper.summary(), **stopper.best_figures}
    for key in ("best_epoch", "epochs_trained"):
        if key in figures:
            tracker.log_metric(key, figures[key])
    return figures


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
    """Per epoch: `epoch_loss`, and `val_loss`/`val_accuracy` when there is a validation split
    (which early stopping, when on, watches)."""

    def __init__(self, tracker, model, val_split: Split, device, progress, stopper=None):
        self.tracker, self.model, self.device, self.progress = tracker, model, device, progress
        self.stopper: EarlyStopping | None = stopper
        self.val_loader = validation_loader(val_split)
        self.last_validation: dict[str, float] = {}

    def __call__(self, epoch: int, epoch_loss: float) -> None:
        self.tracker.log_metric("epoch_loss", epoch_loss, step=epoch)
        if self.val_loader is None:
            return
        val_loss, val_accuracy = evaluate_loss_accuracy(self.model, self.val_loader, self.device)
        self.tracker.log_metric("val_loss", val_loss, step=epoch)
        self.tracker.log_metric("val_accuracy", val_accuracy, step=epoch)
        self.last_validation = {"val_loss": val_loss, "val_accuracy": val_accuracy}
        note = f"epoch {epoch + 1}: val_loss {val_loss:.4f} val_acc {val_accuracy:.4f}"
        if self.stopper:
            self.stopper.update(epoch, val_loss, self.model, val_accuracy=val_accuracy)
            if self.stopper.should_stop:
                best = self.stopper.summary().get("best_epoch", "none")
                note += f"; early stopping: no better val_loss for {self.stopper.patience} epochs"
                note += f", the checkpoint is epoch {best}'s"
        if self.progress:
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

"""A trial's training: one configuration fitted in this process on the pipeline's own splits,
validated after every epoch. The test split is never read here."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import torch

from pipeline.config.schema import Params
from pipeline.data.splits import Split, check_width, load_split
from pipeline.process.errors import InputError
from pipeline.runtime.distributed import Runtime
from pipeline.training.early_stopping import EarlyStopping
from pipeline.training.loop import evaluate_loss_accuracy
from pipeline.training.setup import prepare, validation_loader

# on_validation(epoch, val_loss, val_accuracy): 0-based epoch; it may raise to stop the trial.
ValidationCallback = Callable[[int, float, float], None]


class Diverged(Exception):
    """The training loss became NaN or infinite: the configuration cannot be scored."""


def load_splits(data_dir: Path) -> tuple[Split, Split]:
    """data/train.npz and data/val.npz as `generate` wrote them; a study needs a validation set."""
    train_path, val_path = data_dir / "train.npz", data_dir / "val.npz"
    train_split, val_split = load_split(train_path), load_split(val_path)
    if not len(val_split):
        raise InputError(
            f"{val_path}: no validation rows; expected data.val_size above 0 in params.yaml "
            "(then `dvc repro generate`): a study scores trials on validation, never on test"
        )
    width = train_split.features.shape[1]
    check_width(val_split, val_path, width, f"expected {width} as in {train_path}")
    return train_split, val_split


def fit_trial(
    *,
    params: Params,
    train_split: Split,
    val_split: Split,
    device: torch.device,
    on_validation: ValidationCallback,
) -> tuple[float, float]:
    """Train as the train stage does for `params`; the last epoch's (val_loss, val_accuracy), or
    with train.early_stopping the best epoch's (what the train stage's checkpoint would hold)."""
    fitting = prepare(
        params=params, train_split=train_split, val_split=val_split, runtime=Runtime(device)
    )
    val_loader = validation_loader(val_split)
    last: list[tuple[float, float]] = []
    stopper = EarlyStopping(params.train.early_stopping) if params.train.early_stopping else None

    def on_epoch(epoch: int, epoch_loss: float) -> None:
        if not math.isfinite(epoch_loss):
            raise Diverged(f"training loss is {epoch_loss} in epoch {epoch + 1}")
        val_loss, val_accuracy = evaluate_loss_accuracy(fitting.model, val_loader, device)
        last[:] = [(val_loss, val_accuracy)]
        if stopper:
            stopper.update(epoch, val_loss, fitting.model, val_accuracy=val_accuracy)
        on_validation(epoch, val_loss, val_accuracy)

    fitting.run(on_epoch=on_epoch, stop=(lambda _: stopper.should_stop) if stopper else None)
    if stopper and stopper.best_epoch is not None:
        return stopper.best_figures["val_loss"], stopper.best_figures["val_accuracy"]
    return last[0]


def repeat_seeds(params: Params, repeats: int) -> list[int]:
    """A trial's training seeds: train.seed (or `seed`), then the next ones."""
    return [params.train_seed + offset for offset in range(repeats)]


def fit_repeats(
    *, params: Params, seeds: list[int], on_validation: ValidationCallback, **fit_args
) -> tuple[float, float, list[float]]:
    """fit_trial once per training seed on the same splits: the mean (val_loss, val_accuracy)
    and each seed's val_accuracy. on_validation gets the running mean at step
    `repeat * train.epochs + epoch`: the seeds done so far with this seed's current epoch, so
    the pruner judges the trial on the figure it will be scored by."""
    done: list[tuple[float, float]] = []
    for repeat, seed in enumerate(seeds):
        seeded = params
        if seed != params.train_seed:  # one seed: exactly the params the study suggested
            seeded = dataclasses.replace(params, train=dataclasses.replace(params.train, seed=seed))

        offset = repeat * params.train.epochs

        def running(epoch: int, val_loss: float, val_accuracy: float, offset=offset) -> None:
            losses = [loss for loss, _ in done] + [val_loss]
            accuracies = [accuracy for _, accuracy in done] + [val_accuracy]
            mean_loss, mean_accuracy = sum(losses) / len(losses), sum(accuracies) / len(accuracies)
            on_validation(offset + epoch, mean_loss, mean_accuracy)

        done.append(fit_trial(params=seeded, on_validation=running, **fit_args))
    losses, accuracies = [loss for loss, _ in done], [accuracy for _, accuracy in done]
    return sum(losses) / len(losses), sum(accuracies) / len(accuracies), accuracies

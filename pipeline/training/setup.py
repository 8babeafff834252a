"""One training's setup and loop, shared by the train stage and the study's trials.

A trial must reproduce what `dvc repro` trains for the same params, so both build the model,
optimizer and loader here, in the same order from the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.config.schema import Params
from pipeline.data.batching import make_loader
from pipeline.data.splits import Split
from pipeline.model.architecture import Architecture
from pipeline.model.network import build_model
from pipeline.training.loop import FitResult, fit, make_optimizer

# Validation runs in one pass of this many rows, in train's epochs and in trials alike.
VAL_BATCH_SIZE = 1024


def validation_loader(val_split: Split):
    return make_loader(val_split, batch_size=VAL_BATCH_SIZE) if len(val_split) else None


def architecture(params: Params, train_split: Split) -> Architecture:
    return Architecture(
        num_inputs=train_split.features.shape[1],
        hidden=params.model.hidden,
        num_outputs=len(train_split.classes),
        features=train_split.feature_names,
        classes=train_split.classes,
        standardize=train_split.standardize,
        dropout=params.model.dropout,
        encoding=train_split.encoding,
    )


@dataclass
class Fitting:
    """A model ready to train: call run() to fit it; `model` is the (possibly wrapped) module."""

    arch: Architecture
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: object
    loader: object
    runtime: object
    epochs: int

    def run(self, *, on_batch=None, on_epoch=None, stop=None) -> FitResult:
        return fit(
            self.model,
            self.loader,
            self.optimizer,
            self.runtime.device,
            self.epochs,
            on_batch=on_batch,
            on_epoch=on_epoch,
            before_epoch=lambda epoch: self.runtime.start_epoch(self.sampler, epoch),
            reduce_loss=self.runtime.reduce_loss,
            stop=stop,
        )


def prepare(*, params: Params, train_split: Split, val_split: Split, runtime) -> Fitting:
    """Seed, build the model and optimizer, then the loader (which draws its shuffles)."""
    cfg = params.train
    arch = architecture(params, train_split)
    # The notebook's order: seed, build the model, then let the loader draw its shuffles.
    # train_seed is `seed` unless train.seed is set: the data's splits never depend on it.
    torch.manual_seed(params.train_seed)
    model = build_model(arch)
    if model.standardize is not None:  # the training rows' statistics only
        model.standardize.fit(torch.from_numpy(train_split.features))
    model = runtime.wrap(model.to(runtime.device))
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    sampler = runtime.sampler(train_split, cfg.shuffle, params.train_seed, cfg.drop_last)
    loader = make_loader(
        train_split, cfg.batch_size, cfg.shuffle, cfg.drop_last, cfg.num_workers, sampler
    )
    return Fitting(arch, model, optimizer, sampler, loader, runtime, cfg.epochs)

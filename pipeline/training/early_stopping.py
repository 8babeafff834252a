"""Early stopping on val_loss: patience in epochs, and the best epoch's weights kept aside.

Shared by the train stage (pipeline.training.work) and the study's trials (pipeline.search.trials),
so a trial stops and scores where `dvc repro` would stop and checkpoint for the same params.
"""

from __future__ import annotations

import math

import torch


class EarlyStopping:
    """Watches one val_loss per epoch. `should_stop` once `patience` epochs in a row have not
    improved on the best (strictly lower); `best_state` is a CPU copy of that epoch's weights."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch: int | None = None  # 0-based, as the loop counts
        self.best_figures: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.epochs_seen = 0

    def update(self, epoch: int, val_loss: float, model: torch.nn.Module, **figures) -> None:
        """Record epoch `epoch`'s val_loss (and figures to report with it) for `model`'s weights.

        NaN never improves (NaN < x is false), so a diverged epoch cannot become the best."""
        self.epochs_seen = epoch + 1
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, epoch
            self.best_figures = {"val_loss": val_loss, **figures}
            # A copy: the optimizer keeps changing the module's own tensors in place.
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    @property
    def should_stop(self) -> bool:
        since_best = self.epochs_seen - (0 if self.best_epoch is None else self.best_epoch + 1)
        return since_best >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Put the best epoch's weights back into `model` (nothing if no epoch improved)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def summary(self) -> dict[str, float | int]:
        """For metrics/train.json and MLflow: epochs counted from 1, as the progress lines do."""
        best = {"best_epoch": self.best_epoch + 1} if self.best_epoch is not None else {}
        return {**best, "epochs_trained": self.epochs_seen}

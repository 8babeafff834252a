"""Pure loops: training and prediction. Tracking is injected through callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# on_batch(step, loss): step is the global batch index (0-based), loss the batch's mean loss.
BatchCallback = Callable[[int, float], None]
# on_epoch(epoch, epoch_loss): epoch is 0-based, epoch_loss the mean of its batch losses.
EpochCallback = Callable[[int, float], None]
# stop(epoch): asked after on_epoch; True ends training after this epoch (early stopping).
StopCallback = Callable[[int], bool]


@dataclass
class FitResult:
    steps: int
    last_loss: float
    epoch_losses: list[float]


def make_optimizer(
    name: str, parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0
):
    """weight_decay is torch's own: an L2 term added to the gradient (for Adam too, so before
    Adam's scaling: classic Adam, not AdamW's decoupled decay); 0 is torch's default."""
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(parameters, lr=lr, weight_decay=weight_decay)


def train_epoch(
    model: torch.nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    first_step: int = 0,
    on_batch: BatchCallback | None = None,
    reduce_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[float]:
    """One pass over `loader`; returns the batch losses. `reduce_loss` averages across ranks."""
    model.train()
    losses = []
    for offset, (features, labels) in enumerate(loader):
        features, labels = features.to(device), labels.to(device)
        loss = F.cross_entropy(model(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        reported = reduce_loss(loss.detach()) if reduce_loss else loss.detach()
        value = reported.item()
        losses.append(value)
        if on_batch:
            on_batch(first_step + offset, value)
    return losses


def fit(
    model: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epochs: int,
    on_batch: BatchCallback | None = None,
    on_epoch: EpochCallback | None = None,
    before_epoch: Callable[[int], None] | None = None,
    reduce_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
    stop: StopCallback | None = None,
) -> FitResult:
    step, epoch_losses, last = 0, [], float("nan")
    for epoch in range(epochs):
        if before_epoch:
            before_epoch(epoch)
        losses = train_epoch(model, loader, optimizer, device, step, on_batch, reduce_loss)
        step += len(losses)
        epoch_loss = sum(losses) / len(losses) if losses else float("nan")
        epoch_losses.append(epoch_loss)
        last = losses[-1] if losses else last
        if on_epoch:
            on_epoch(epoch, epoch_loss)
        if stop is not None and stop(epoch):
            break
    return FitResult(steps=step, last_loss=last, epoch_losses=epoch_losses)


@torch.no_grad()
def evaluate_loss_accuracy(
    model: torch.nn.Module, loader: Iterable, device: torch.device
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over every row of `loader`."""
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for features, labels in loader:
        features, labels = features.to(device), labels.to(device)
        logits = model(features)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        count += len(labels)
    return total_loss / count, correct / count

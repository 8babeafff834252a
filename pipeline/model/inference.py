"""Inference: the one place that turns the MLP's logits into probabilities and the table of them.

`evaluate`, `pipeline.predict` and the served MLflow model all go through here, so the CLI and the
served model cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


@torch.no_grad()
def probabilities(model: torch.nn.Module, features: np.ndarray) -> np.ndarray:
    """Softmax probabilities (float32) of each class for feature rows (float32), on the CPU."""
    model.eval()
    return torch.softmax(model(torch.as_tensor(features)), dim=1).numpy()


@torch.no_grad()
def predict_proba(model: torch.nn.Module, loader: Iterable, device: torch.device) -> torch.Tensor:
    """Softmax probabilities for every row of `loader`, in order, on the CPU."""
    model.eval()
    chunks = [torch.softmax(model(features.to(device)), dim=1).cpu() for features, _ in loader]
    return torch.cat(chunks) if chunks else torch.zeros(0)


def probabilities_table(probs: np.ndarray, classes: tuple):
    """prob_<class> per class (float64), then the predicted `class`, by name."""
    import pandas as pd

    table = pd.DataFrame(probs.astype(np.float64), columns=[f"prob_{c}" for c in classes])
    table["class"] = [classes[i] for i in probs.argmax(axis=1)]
    return table

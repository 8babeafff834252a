"""The notebook's MLP, built from layer sizes; no device, logging or MLflow code here."""

from __future__ import annotations

import itertools

import torch

from pipeline.model.architecture import Architecture


class Standardize(torch.nn.Module):
    """(x - mean) / scale with the training split's statistics, kept as buffers: the plain
    state_dict carries them, so every consumer of the model takes raw feature values."""

    def __init__(self, num_inputs: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_inputs))
        self.register_buffer("scale", torch.ones(num_inputs))

    def fit(self, features: torch.Tensor) -> None:
        """Statistics of `features` (the training rows only), as scikit-learn's StandardScaler:
        population standard deviation, and a scale of 1 for a constant column."""
        rows = features.double()
        std = rows.std(dim=0, correction=0)
        self.mean.copy_(rows.mean(dim=0))
        self.scale.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class NeuralNetwork(torch.nn.Module):
    """Linear/ReLU layers returning logits; `layers.N.*` keys match the notebook's state_dict.

    With `standardize`, a Standardize module comes first (keys `standardize.mean/scale`). With
    `dropout` > 0, a Dropout follows each hidden ReLU (no parameters, but it takes an index in
    `layers`); with 0 none is inserted, so the keys and numbers stay the notebook's."""

    def __init__(
        self,
        num_inputs: int,
        num_outputs: int,
        hidden: tuple[int, ...] = (30, 20),
        standardize: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.standardize = Standardize(num_inputs) if standardize else None
        widths = [num_inputs, *hidden]
        layers: list[torch.nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [torch.nn.Linear(width_in, width_out), torch.nn.ReLU()]
            if dropout > 0:
                layers.append(torch.nn.Dropout(dropout))
        layers.append(torch.nn.Linear(widths[-1], num_outputs))
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardize is not None:
            x = self.standardize(x)
        return self.layers(x)


def build_model(arch: Architecture) -> NeuralNetwork:
    return NeuralNetwork(
        arch.num_inputs, arch.num_outputs, arch.hidden, arch.standardize, arch.dropout
    )


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

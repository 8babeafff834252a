"""The notebook's MLP, built from layer sizes; no device, logging or MLflow code here."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Architecture:
    """What is needed to rebuild the module from a state_dict (models/model.json)."""

    num_inputs: int
    hidden: tuple[int, ...]
    num_outputs: int

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, raw: dict) -> Architecture:
        return cls(
            int(raw["num_inputs"]), tuple(int(h) for h in raw["hidden"]), int(raw["num_outputs"])
        )


class NeuralNetwork(torch.nn.Module):
    """Linear/ReLU layers returning logits; `layers.N.*` keys match the notebook's state_dict."""

    def __init__(self, num_inputs: int, num_outputs: int, hidden: tuple[int, ...] = (30, 20)):
        super().__init__()
        widths = [num_inputs, *hidden]
        layers: list[torch.nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [torch.nn.Linear(width_in, width_out), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(widths[-1], num_outputs))
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_model(arch: Architecture) -> NeuralNetwork:
    return NeuralNetwork(arch.num_inputs, arch.num_outputs, arch.hidden)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

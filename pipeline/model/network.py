"""The notebook's MLP, built from layer sizes; no device, logging or MLflow code here."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch

from pipeline.model.encoding import TableEncoding


@dataclass(frozen=True)
class Architecture:
    """What is needed to rebuild the module from a state_dict (models/model.json), and what its
    inputs and outputs mean: the feature columns in order and the class of each output."""

    num_inputs: int
    hidden: tuple[int, ...]
    num_outputs: int
    features: tuple[str, ...] = ()  # default: x0, x1, ... (generated data)
    classes: tuple[int | str, ...] = ()  # default: 0, 1, ... (generated data)
    standardize: bool = False  # the module standardizes its inputs (buffers in the state_dict)
    # Dropout after each hidden ReLU: with p > 0 the Dropout modules shift the `layers.N` indices,
    # so the module cannot be rebuilt without it. 0 (and model.json files saved before it): none.
    dropout: float = 0.0
    # A table's: raw columns -> these inputs (models/model.json's "encoding"; generated sets and
    # models saved before it: none, the inputs are the features themselves).
    encoding: TableEncoding | None = None

    def __post_init__(self):
        # Models saved before names were kept get the generated data's names.
        if not self.features:
            object.__setattr__(self, "features", tuple(f"x{i}" for i in range(self.num_inputs)))
        if not self.classes:
            object.__setattr__(self, "classes", tuple(range(self.num_outputs)))

    def to_dict(self) -> dict:
        lists = {"hidden": list(self.hidden), "features": list(self.features)}
        plain = {**asdict(self), **lists, "classes": list(self.classes)}
        del plain["encoding"]
        return plain | ({"encoding": self.encoding.to_dict()} if self.encoding else {})

    @classmethod
    def from_dict(cls, raw: dict) -> Architecture:
        return cls(
            int(raw["num_inputs"]),
            tuple(int(h) for h in raw["hidden"]),
            int(raw["num_outputs"]),
            features=tuple(raw.get("features", ())),
            classes=tuple(raw.get("classes", ())),
            standardize=bool(raw.get("standardize", False)),
            dropout=float(raw.get("dropout", 0.0)),
            encoding=TableEncoding.from_dict(raw["encoding"]) if "encoding" in raw else None,
        )


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

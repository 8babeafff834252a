"""The params.yaml keys as frozen dataclasses: names, types and defaults (pipeline.config.params
reads them, pipeline.config.rules checks them)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataParams:
    kind: str = "classification"
    n_samples: int = 6000
    n_features: int = 50
    n_classes: int = 3
    # table: a CSV/Parquet file under data/raw, its label column, and the feature columns
    # (empty: every other column).
    path: str = ""
    target: str = ""
    features: tuple[str, ...] = ()
    # table: columns left out (an identifier, a column of no use), without listing the others.
    drop: tuple[str, ...] = ()
    # Unset: true for a table (real columns come in any units), false for the generated sets,
    # whose models stay exactly the notebook's (no extra state_dict keys, same numbers).
    standardize: bool | None = None
    test_size: float = 0.2
    val_size: float = 0.1
    # table: categories seen fewer times in the training split share one "other" input; a text
    # column with more distinct values than max_categories is refused.
    min_frequency: int = 5
    max_categories: int = 50

    def __post_init__(self):
        if self.standardize is None:
            object.__setattr__(self, "standardize", self.kind == "table")


@dataclass(frozen=True)
class ModelParams:
    hidden: tuple[int, ...] = (30, 20)
    # Dropout after each hidden ReLU; 0 inserts no Dropout module: the notebook's model exactly.
    dropout: float = 0.0


@dataclass(frozen=True)
class TrainParams:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.1
    optimizer: str = "sgd"
    shuffle: bool = True
    drop_last: bool = True
    num_workers: int = 0
    device: str = "auto"
    strategy: str = "single"
    nproc: int = 2
    log_every: int = 1
    # L2 penalty passed to the optimizer (torch's coupled weight_decay, not AdamW's).
    weight_decay: float = 0.0
    # Patience in epochs on val_loss; 0 = off. On: the checkpoint is the best epoch's weights.
    early_stopping: int = 0
    # Initialisation and shuffling; None = the top-level seed, which alone fixes the data, so
    # repeats of one configuration (train.seed 1, 2, 3, ...) train on the same splits.
    seed: int | None = None


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = 256


@dataclass(frozen=True)
class ExportParams:
    register: bool = False
    model_name: str = "mlp-pipeline"


@dataclass(frozen=True)
class Params:
    seed: int = 123
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    export: ExportParams = field(default_factory=ExportParams)

    def flat(self) -> dict[str, Any]:
        """Every key with dots (`train.lr`), as MLflow params and DVC show them."""
        return _flatten(dataclasses.asdict(self))

    @property
    def train_seed(self) -> int:
        """The seed of weight initialisation and shuffling: train.seed, else `seed`."""
        return self.seed if self.train.seed is None else self.train.seed


# The one key that tells repeats of a configuration apart (see configuration_digest).
REPEAT_KEY = "train.seed"


def configuration_digest(flat: dict[str, Any]) -> str:
    """A short, stable digest of every param but train.seed: runs that differ only in their
    training seed are repeats of one configuration and share it (train.seed null, absent or
    equal to `seed` alike). `flat`: Params.flat(), whose types do not depend on how YAML was
    written (weight_decay 0 and 0.0 are one value)."""
    kept = {key: value for key, value in flat.items() if key != REPEAT_KEY}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = list(value) if isinstance(value, tuple) else value
    return flat

"""What a model file's model.json says: layer sizes, feature names, classes, a table's encoding (no
torch here, so the tracking agent reads it without importing torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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

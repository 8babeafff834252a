"""The study's settings and search space, read from a versioned YAML file (tune.yaml).

One entry per params.yaml key: a range (`low`, `high`, optional `log`) or a list of `choices`.
Whether a range is of whole numbers or reals follows from the key's type in params.yaml. Every
bound and choice passes params.yaml's own validation before a study starts, and keys that would
change the data splits or have no effect on a trial's result are refused: a study compares
configurations on fixed data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.params import read_yaml, with_values
from pipeline.config.schema import Params
from pipeline.process.errors import InputError

DEFAULT_PATH = Path("tune.yaml")
# What a trial's validation accuracy depends on, besides the fixed data and seed.
TUNABLE = (
    "model.hidden",
    "model.dropout",
    "train.epochs",
    "train.batch_size",
    "train.lr",
    "train.optimizer",
    "train.shuffle",
    "train.drop_last",
    "train.weight_decay",
    "train.early_stopping",
)
STUDY_KEYS = {"name": str, "seed": int, "pruner_startup_trials": int, "pruner_warmup_epochs": int}


@dataclass(frozen=True)
class Range:
    key: str
    low: float
    high: float
    log: bool = False
    whole: bool = False  # whole numbers (train.epochs) rather than reals (train.lr)


@dataclass(frozen=True)
class Choice:
    key: str
    choices: tuple


@dataclass(frozen=True)
class StudyConfig:
    name: str
    seed: int
    # Optuna's median pruner: no pruning before this many trials have finished, nor in a
    # trial's first epochs (early accuracy says little about the last).
    pruner_startup_trials: int
    pruner_warmup_epochs: int
    space: tuple[Range | Choice, ...]


def load_space(path: Path, base: Params) -> StudyConfig:
    raw = read_yaml(path, expected="a study's settings and search space (see docs/tuning.md)")
    if not isinstance(raw, dict) or set(raw) != {"study", "space"}:
        keys = sorted(raw) if isinstance(raw, dict) else raw
        raise InputError(f"{path}: top level is {keys!r}; expected exactly 'study' and 'space'")
    study = _study_settings(path, raw["study"])
    if not isinstance(raw["space"], dict) or not raw["space"]:
        raise InputError(f"{path}: space is {raw['space']!r}; expected a mapping of params keys")
    space = tuple(_entry(path, key, spec, base) for key, spec in raw["space"].items())
    return StudyConfig(space=space, **study)


def _study_settings(path: Path, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or set(raw) != set(STUDY_KEYS):
        raise InputError(f"{path}: study is {raw!r}; expected the keys {', '.join(STUDY_KEYS)}")
    for key, kind in STUDY_KEYS.items():
        value = raw[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            expected = "a non-empty name" if kind is str else "a whole number, 0 or more"
            raise InputError(f"{path}: study.{key} is {value!r}; expected {expected}")
    if not raw["name"].strip():
        raise InputError(f"{path}: study.name is {raw['name']!r}; expected a non-empty name")
    return dict(raw)


def _entry(path: Path, key: str, spec: Any, base: Params) -> Range | Choice:
    where = f"{path}: space.{key}"
    if key not in base.flat():
        with_values(base, {key: None}, source=str(path))  # unknown key: names the closest one
    if key not in TUNABLE:
        why = (
            "it would change the data splits"
            if key == "seed" or key.startswith("data.")
            else "a trial's training seeds are `pipeline.tune --repeats`'s: a study compares "
            "configurations, not seeds"
            if key == "train.seed"
            else "it is not a params.yaml key that changes a trial's result"
        )
        raise InputError(f"{where} is refused ({why}); expected one of {', '.join(TUNABLE)}")
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        return _choice(where, key, spec["choices"], base)
    if isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {"low", "high", "log"}:
        return _range(where, key, spec, base)
    raise InputError(f"{where} is {spec!r}; expected {{choices: [...]}} or {{low, high[, log]}}")


def _choice(where: str, key: str, choices: Any, base: Params) -> Choice:
    if not isinstance(choices, list) or not choices:
        raise InputError(f"{where}.choices is {choices!r}; expected a non-empty list")
    for value in choices:
        with_values(base, {key: value}, source=f"{where}.choices")
    as_tuples = tuple(tuple(v) if isinstance(v, list) else v for v in choices)
    if len(set(as_tuples)) != len(as_tuples):
        raise InputError(f"{where}.choices is {choices!r}; expected each choice once")
    return Choice(key, as_tuples)


def _range(where: str, key: str, spec: dict, base: Params) -> Range:
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    whole = isinstance(base.flat()[key], int) and not isinstance(base.flat()[key], bool)
    if not whole and not isinstance(base.flat()[key], float):
        raise InputError(f"{where} has low/high; expected {{choices: [...]}} for this key")
    for bound in (low, high):
        number = isinstance(bound, int | float) and not isinstance(bound, bool)
        if not number or (whole and not isinstance(bound, int)) or not math.isfinite(bound):
            expected = "whole numbers" if whole else "numbers"
            raise InputError(f"{where} bound is {bound!r}; expected {expected}")
        with_values(base, {key: bound}, source=where)
    if not low < high:
        raise InputError(f"{where}: low {low!r} is not below high {high!r}; expected low < high")
    if not isinstance(log, bool):
        raise InputError(f"{where}.log is {log!r}; expected true or false")
    return Range(key, low, high, log, whole)

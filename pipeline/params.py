"""The only reader of params.yaml: typed, validated, frozen dataclasses.

Every stage calls `load_params()` first, and the `validate` stage runs it before any stage that
writes, so a bad params.yaml changes nothing on disk (DVC deletes a stage's outputs before it
runs the stage, which is too late to check there).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from pipeline.errors import InputError

DEFAULT_PATH = Path("params.yaml")


# Where a user's table must lie: the generate stage depends on this directory (dvc.yaml), so a
# new version of a table in it (`dvc add` again) reruns generate and everything after it.
TABLE_DIR = "data/raw"


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
    # Unset: true for a table (real columns come in any units), false for the generated sets,
    # whose models stay exactly the notebook's (no extra state_dict keys, same numbers).
    standardize: bool | None = None
    test_size: float = 0.2
    val_size: float = 0.1

    def __post_init__(self):
        if self.standardize is None:
            object.__setattr__(self, "standardize", self.kind == "table")


@dataclass(frozen=True)
class ModelParams:
    hidden: tuple[int, ...] = (30, 20)


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


CHOICES = {
    "data.kind": ("toy", "classification", "table"),
    "train.optimizer": ("sgd", "adam"),
    "train.strategy": ("single", "ddp"),
}
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# The notebook's toy set: 5 training and 2 test points with 2 features and 2 classes.
TOY_SHAPE = {"n_train": 5, "n_test": 2, "n_features": 2, "n_classes": 2}


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` (no dot) as a string; users mean a number. A key given twice is
    refused: plain YAML keeps the last one silently, so an edit could have no effect."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$"),
    list("-+0123456789."),
)


def load_params(path: Path | str = DEFAULT_PATH) -> Params:
    path = Path(path)
    raw = read_yaml(path, expected="the pipeline's params.yaml")
    params = build(raw if raw is not None else {}, source=str(path))
    check_consistency(params, source=str(path))
    return params


def read_yaml(path: Path, expected: str) -> Any:
    """A YAML file read as params.yaml is (numbers such as 1e-3, no key twice), or InputError."""
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; expected {expected}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        problem = f" ({exc.problem})" if getattr(exc, "problem", None) else ""
        raise InputError(
            f"{path}: not valid YAML{line}{problem}; expected a mapping of keys, each once"
        ) from None


def with_values(params: Params, values: dict[str, Any], source: str) -> Params:
    """`params` with some dotted keys (`train.lr`) replaced, validated as params.yaml is."""
    tree = dataclasses.asdict(params)
    for key, value in values.items():
        *sections, name = key.split(".")
        node = tree
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if not isinstance(node, dict) or name not in node or isinstance(node[name], dict):
            raise InputError(f"{source}: unknown key '{key}'{_suggest('', key)}")
        node[name] = list(value) if isinstance(value, tuple) else value
    tree = _untuple(tree)
    changed = build(tree, source=source)
    check_consistency(changed, source=source)
    return changed


def _untuple(tree: dict[str, Any]) -> dict[str, Any]:
    # asdict keeps tuples (model.hidden); build() expects what YAML gives: lists.
    return {
        k: _untuple(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v
        for k, v in tree.items()
    }


def build(raw: Any, source: str = "params.yaml") -> Params:
    """Turn a parsed mapping into Params, refusing unknown keys and wrong types."""
    return _build(Params, raw, prefix="", source=source)


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    if not isinstance(raw, dict):
        where = prefix.rstrip(".") or "the top level"
        raise InputError(f"{source}: {where} is {raw!r}; expected a mapping of keys")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            raise InputError(f"{source}: unknown key '{prefix}{key}'{_suggest(prefix, key)}")
    values = {}
    for name in names:
        if name not in raw:
            continue
        key, hint = prefix + name, hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], prefix=key + ".", source=source)
        else:
            values[name] = _convert(key, raw[name], hint, source)
    return cls(**values)


def _suggest(prefix: str, key: str) -> str:
    every_key = list(Params().flat()) + [f.name for f in dataclasses.fields(Params)]
    close = difflib.get_close_matches(prefix + str(key), every_key, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _convert(key: str, value: Any, hint: Any, source: str) -> Any:
    def refuse(expected: str) -> InputError:
        return InputError(f"{source}: {key} is {value!r}; expected {expected}")

    # bool is a subclass of int in Python, so `epochs: true` must be refused explicitly.
    if hint is bool or hint == bool | None:
        if not isinstance(value, bool) and not (value is None and hint is not bool):
            raise refuse("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("a whole number")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refuse("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise refuse("a string")
        return value
    if hint == tuple[int, ...]:
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise refuse("a list of whole numbers such as [30, 20]")
        return tuple(value)
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise refuse("a list of column names such as [alcohol, ash]")
        return tuple(value)
    raise TypeError(f"no conversion for {key}: {hint}")


def check_consistency(params: Params, source: str = "params.yaml") -> None:
    """Ranges, choices and contradictions between keys, each as a one-line error."""
    for key, value in params.flat().items():
        problem = _range_problem(key, value)
        if problem:
            raise InputError(f"{source}: {key} is {value!r}; expected {problem}")
    problem = _contradiction(params)
    if problem:
        raise InputError(f"{source}: {problem}")


def _range_problem(key: str, value: Any) -> str | None:
    if key in CHOICES and value not in CHOICES[key]:
        return "one of " + ", ".join(CHOICES[key])
    if key == "train.device" and not DEVICE_PATTERN.match(value):
        return "auto, cpu, cuda or cuda:N"
    if key == "train.lr" and not (math.isfinite(value) and value > 0):
        return "a finite number above 0"
    if key in ("data.test_size",) and not 0 < value < 1:
        return "a number between 0 and 1 (exclusive)"
    if key == "data.val_size" and not 0 <= value < 1:
        return "a number from 0 up to (not including) 1"
    if key == "data.n_classes" and value < 2:
        return "at least 2"
    if key == "model.hidden" and (not value or min(value) < 1):
        return "a non-empty list of positive widths such as [30, 20]"
    if key in ("train.num_workers", "seed") and value < 0:
        return "0 or more"
    positive = ("n_samples", "n_features", "epochs", "batch_size", "nproc", "log_every")
    if key.rsplit(".", 1)[-1] in positive and isinstance(value, int) and value < 1:
        return "1 or more"
    if key == "export.model_name" and not value.strip():
        return "a non-empty registered model name"
    return None


def _contradiction(params: Params) -> str | None:
    data, train = params.data, params.train
    if data.kind == "toy":
        if data.val_size:
            return f"data.val_size is {data.val_size}; expected 0 for the toy set (5 points)"
        n_train = TOY_SHAPE["n_train"]
    elif data.kind == "table":
        # The table's size is known only once generate reads it; train checks the batches.
        return _table_problem(data)
    else:
        problem = _classification_problem(data)
        if problem:
            return problem
        n_train = split_sizes(data)["train"]
    return batches_problem(train, n_train)


def batches_problem(train: TrainParams, n_train: int) -> str | None:
    """A training split too small for the batch size or the processes, or None."""
    processes = train.nproc if train.strategy == "ddp" else 1
    per_process = n_train // processes
    if train.drop_last and per_process < train.batch_size:
        return (
            f"train.batch_size is {train.batch_size} with drop_last, but each of {processes} "
            f"process(es) gets {per_process} training samples; expected a batch size of at most "
            f"{per_process} or train.drop_last: false"
        )
    if n_train < processes:
        return f"train.nproc is {processes}, more than the {n_train} training samples"
    return None


def _table_problem(data: DataParams) -> str | None:
    if not data.path:
        return f"data.path is empty; expected a CSV or Parquet file under {TABLE_DIR}/"
    if not Path(data.path).is_relative_to(TABLE_DIR) or ".." in Path(data.path).parts:
        return (
            f"data.path is {data.path!r}; expected a file under {TABLE_DIR}/ (the directory the "
            "generate stage depends on, so a new version of the table reruns it)"
        )
    if not data.target:
        return "data.target is empty; expected the name of the table's label column"
    if len(set(data.features)) < len(data.features):
        twice = next(name for name in data.features if data.features.count(name) > 1)
        return f"data.features lists {twice!r} twice; expected each column once"
    if data.target in data.features:
        return f"data.features lists {data.target!r}, the target; expected feature columns only"
    return None


def _classification_problem(data: DataParams) -> str | None:
    """What scikit-learn would refuse in generate, after DVC has already removed the data."""
    # make_classification puts 2 clusters per class on the corners of an n_informative-cube.
    needed = math.ceil(math.log2(2 * data.n_classes))
    if data.n_features < needed:
        return (
            f"data.n_features is {data.n_features} but data.n_classes {data.n_classes} needs "
            f"at least {needed} features (2**n_features >= 2 * n_classes)"
        )
    # A stratified split needs 2 samples of each class to split; labels are balanced, with 1%
    # flipped at random, so ask for 2 per class in every split.
    least = 2 * data.n_classes
    for split, size in split_sizes(data).items():
        if size < least and (split != "val" or data.val_size):
            return (
                f"data.n_classes is {data.n_classes} but the {split} split gets {size} of "
                f"data.n_samples {data.n_samples}; expected at least 2 samples per class "
                f"({least}) in every split"
            )
    return None


def split_sizes(data: DataParams) -> dict[str, int]:
    """Sample counts per split, computed as scikit-learn's train_test_split rounds them."""
    if data.kind == "toy":
        return {"train": TOY_SHAPE["n_train"], "val": 0, "test": TOY_SHAPE["n_test"]}
    n_test = math.ceil(data.test_size * data.n_samples)
    n_rest = data.n_samples - n_test
    n_val = math.ceil(data.val_size * n_rest) if data.val_size else 0
    return {"train": n_rest - n_val, "val": n_val, "test": n_test}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = list(value) if isinstance(value, tuple) else value
    return flat

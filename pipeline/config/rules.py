"""The rules params.yaml must follow beyond types: ranges, choices, and contradictions between
keys (splits too small to stratify, batches larger than a split). Each is a one-line problem
that pipeline.config.params turns into an InputError naming the key, the value and what was
expected.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from pipeline.config.schema import DataParams, Params, TrainParams
from pipeline.process.errors import InputError

# Where a user's table must lie: the generate stage depends on this directory (dvc.yaml), so a
# new version of a table in it (`dvc add` again) reruns generate and everything after it.
TABLE_DIR = "data/raw"
CHOICES = {
    "data.kind": ("toy", "classification", "table"),
    "train.optimizer": ("sgd", "adam"),
    "train.strategy": ("single", "ddp"),
}
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# The notebook's toy set: 5 training and 2 test points with 2 features and 2 classes.
TOY_SHAPE = {"n_train": 5, "n_test": 2, "n_features": 2, "n_classes": 2}


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
    if key == "train.seed" and value is None:
        return None
    if key in ("train.num_workers", "train.early_stopping", "seed", "train.seed") and value < 0:
        return "0 or more"
    if key == "train.weight_decay" and not (math.isfinite(value) and value >= 0):
        return "a finite number, 0 or more"
    if key == "model.dropout" and not 0 <= value < 1:
        return "a number from 0 up to (not including) 1"
    positive = (
        *("n_samples", "n_features", "epochs", "batch_size", "nproc", "log_every"),
        *("min_frequency", "max_categories"),
    )
    if key.rsplit(".", 1)[-1] in positive and isinstance(value, int) and value < 1:
        return "1 or more"
    if key == "export.model_name" and not value.strip():
        return "a non-empty registered model name"
    return None


def _contradiction(params: Params) -> str | None:
    data, train = params.data, params.train
    if train.early_stopping and not data.val_size:
        return (
            f"train.early_stopping is {train.early_stopping} but data.val_size is "
            f"{data.val_size}; expected data.val_size above 0 (early stopping watches val_loss) "
            "or train.early_stopping: 0"
        )
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
    if data.target in data.drop:
        return f"data.drop lists {data.target!r}, the target; expected feature columns only"
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
    return split_counts(data.n_samples, test_size=data.test_size, val_size=data.val_size)


def split_counts(n_rows: int, *, test_size: float, val_size: float) -> dict[str, int]:
    """Rows per split of n_rows, as scikit-learn's train_test_split rounds them (test first,
    then validation out of the rest)."""
    n_test = math.ceil(test_size * n_rows)
    n_rest = n_rows - n_test
    n_val = math.ceil(val_size * n_rest) if val_size else 0
    return {"train": n_rest - n_val, "val": n_val, "test": n_test}

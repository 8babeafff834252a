"""The battery of bad inputs (issue 6 §1-§2), run against the real stages as a user runs them.

Each row breaks one input of an otherwise valid workspace, runs one stage as a process of its
own (forked from a zygote that imported the libraries once: tests/forked_commands.py) and
expects: exit code 2, exactly one line on stderr naming the file, the value and what was
expected, no traceback, and no file written, changed or deleted (not even an MLflow store).
Adding a case is adding a row to BAD_PARAMS, BAD_FILES or BAD_STORES.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import pickle
import shutil
import sqlite3
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from forked_commands import CommandForker
from helpers import (
    PIPELINE_OUTPUTS,
    ROOT,
    SMALL_PARAMS,
    clean_env,
    commit_all,
    run,
    write_params,
)

from pipeline.config.params import load_params
from pipeline.config.schema import Params
from pipeline.model.network import Architecture, build_model

# A valid params.yaml small enough that every stage takes a second: 4 features, 3 classes,
# splits of 72 train / 18 val / 30 test rows, a 4-6-5-3 MLP.
BASELINE = {
    "seed": 7,
    "data": {
        "kind": "classification",
        "n_samples": 120,
        "n_features": 4,
        "n_classes": 3,
        "test_size": 0.25,
        "val_size": 0.2,
    },
    "model": {"hidden": [6, 5]},
    "train": {"epochs": 1, "batch_size": 8, "lr": 0.1, "device": "cpu"},
    "evaluate": {"batch_size": 64},
}

# A user's table in data/raw/t.csv with label column y (BAD_TABLES writes the file).
TABLE = {"data.kind": '"table"', "data.path": '"data/raw/t.csv"', "data.target": '"y"'}

# The stages' arguments, as dvc.yaml passes them.
USER_COMMANDS = ("tune", "predict")  # python -m pipeline.<command>; the rest are dvc.yaml stages
STAGES = {
    "validate": "--params params.yaml --out data/params.ok",
    "generate": "--params params.yaml --out data",
    "train": "--params params.yaml --data data --checkpoint models/checkpoint.pth"
    " --metrics metrics/train.json --plots plots",
    "evaluate": "--params params.yaml --data data --checkpoint models/checkpoint.pth"
    " --train-metrics metrics/train.json --metrics metrics/eval.json --plots plots",
    "export": "--params params.yaml --checkpoint models/checkpoint.pth"
    " --example-data data/test.npz --train-metrics metrics/train.json --out models/model.pth",
    "predict": "--model models/model.pth --input points.csv",
    "tune": "--trials 1 --params params.yaml --data data --space tune.yaml"
    " --storage sqlite:///optuna.db",
}
# A valid search space for BASELINE (72 training rows, so batches of at most 72 with drop_last).
TUNE_SPACE = """\
study: {name: battery, seed: 1, pruner_startup_trials: 5, pruner_warmup_epochs: 1}
space:
  train.lr: {low: 0.01, high: 0.5, log: true}
  train.batch_size: {choices: [8, 16]}
"""


def space(
    entries: str,
    study: str = "{name: s, seed: 1, pruner_startup_trials: 5, pruner_warmup_epochs: 1}",
):
    """A tune.yaml with these space entries (YAML flow text, one per line)."""
    return text(f"study: {study}\nspace:\n" + "".join(f"  {e}\n" for e in entries.split(";")))


# Bad params.yaml: (stage, edits to BASELINE as {dotted key: YAML text written verbatim} or the
# whole file's text, fragment of the error). `validate` is the gate DVC runs before any stage
# that writes; the last rows show that each stage refuses on its own too.
BAD_PARAMS = [
    # unknown keys, anywhere, with the closest valid key suggested
    ("validate", {"learning_rate": "0.1"}, "params.yaml: unknown key 'learning_rate'"),
    ("validate", {"train.lrr": "0.1"}, "unknown key 'train.lrr'; did you mean 'train.lr'?"),
    ("validate", {"sed": "1"}, "unknown key 'sed'; did you mean 'seed'?"),
    ("validate", {"data.n_sample": "9"}, "did you mean 'data.n_samples'?"),
    ("validate", {"model.hiden": "[3]"}, "unknown key 'model.hiden'; did you mean 'model.hidden'?"),
    ("validate", {"evaluate.batchsize": "9"}, "did you mean 'evaluate.batch_size'?"),
    ("validate", {"export.registr": "true"}, "did you mean 'export.register'?"),
    ("validate", {"optim.lr": "0.1"}, "unknown key 'optim'"),
    # wrong types
    ("validate", {"train.lr": "fast"}, "params.yaml: train.lr is 'fast'; expected a number"),
    ("validate", {"train.lr": '"1e-3"'}, "train.lr is '1e-3'; expected a number"),
    ("validate", {"train.epochs": "true"}, "train.epochs is True; expected a whole number"),
    ("validate", {"train.batch_size": "2.5"}, "train.batch_size is 2.5; expected a whole number"),
    ("validate", {"data.n_samples": "1e3"}, "data.n_samples is 1000.0; expected a whole number"),
    ("validate", {"seed": "abc"}, "seed is 'abc'; expected a whole number"),
    ("validate", {"train.shuffle": "1"}, "train.shuffle is 1; expected true or false"),
    ("validate", {"model.hidden": "30"}, "model.hidden is 30; expected a list of whole numbers"),
    ("validate", {"model.hidden": "[30, 2.5]"}, "model.hidden is [30, 2.5]; expected a list"),
    ("validate", {"train": "3"}, "train is 3; expected a mapping of keys"),
    # out of range
    ("validate", {"train.lr": "0"}, "train.lr is 0.0; expected a finite number above 0"),
    ("validate", {"train.lr": "-0.1"}, "train.lr is -0.1; expected a finite number above 0"),
    ("validate", {"train.lr": ".nan"}, "train.lr is nan; expected a finite number above 0"),
    ("validate", {"train.lr": ".inf"}, "train.lr is inf; expected a finite number above 0"),
    ("validate", {"train.batch_size": "0"}, "train.batch_size is 0; expected 1 or more"),
    ("validate", {"train.epochs": "0"}, "train.epochs is 0; expected 1 or more"),
    ("validate", {"data.test_size": "0"}, "data.test_size is 0.0; expected a number between 0"),
    ("validate", {"data.test_size": "1"}, "data.test_size is 1.0; expected a number between 0"),
    ("validate", {"data.test_size": "1.5"}, "data.test_size is 1.5; expected a number between"),
    ("validate", {"data.val_size": "1"}, "data.val_size is 1.0; expected a number from 0 up to"),
    ("validate", {"data.n_classes": "1"}, "data.n_classes is 1; expected at least 2"),
    ("validate", {"data.n_features": "0"}, "data.n_features is 0; expected 1 or more"),
    ("validate", {"model.hidden": "[]"}, "model.hidden is []; expected a non-empty list of posi"),
    ("validate", {"model.hidden": "[30, 0]"}, "model.hidden is [30, 0]; expected a non-empty"),
    ("validate", {"model.hidden": "[-4]"}, "model.hidden is [-4]; expected a non-empty list"),
    ("validate", {"train.nproc": "0"}, "train.nproc is 0; expected 1 or more"),
    ("validate", {"train.log_every": "0"}, "train.log_every is 0; expected 1 or more"),
    ("validate", {"train.num_workers": "-1"}, "train.num_workers is -1; expected 0 or more"),
    ("validate", {"evaluate.batch_size": "0"}, "evaluate.batch_size is 0; expected 1 or more"),
    ("validate", {"export.model_name": '" "'}, "export.model_name is ' '; expected a non-empty"),
    # unknown choices
    ("validate", {"train.device": "tpu"}, "train.device is 'tpu'; expected auto, cpu, cuda or"),
    ("validate", {"train.strategy": "fsdp"}, "train.strategy is 'fsdp'; expected one of single"),
    ("tune", {"train.strategy": "ddp"}, "params.yaml: train.strategy is 'ddp'; expected 'single'"),
    ("validate", {"train.optimizer": "lbfgs"}, "train.optimizer is 'lbfgs'; expected one of sgd"),
    ("validate", {"data.kind": "images"}, "data.kind is 'images'; expected one of toy, classif"),
    # contradictions between keys
    (
        "validate",
        {"train.batch_size": "100", "train.drop_last": "true"},
        "train.batch_size is 100 with drop_last, but each of 1 process(es) gets 72 training",
    ),
    (
        "validate",
        {"data.kind": "toy", "data.val_size": "0", "train.batch_size": "8"},
        "train.batch_size is 8 with drop_last, but each of 1 process(es) gets 5 training samples",
    ),
    (
        "validate",
        {"train.strategy": "ddp", "train.nproc": "16"},
        "each of 16 process(es) gets 4 training samples",
    ),
    (
        "validate",
        {"data.n_samples": "20", "data.n_classes": "30", "data.n_features": "8"},
        "data.n_classes is 30 but the train split gets 12 of data.n_samples 20; expected at",
    ),
    (
        "validate",
        {"data.n_features": "2", "data.n_classes": "3"},
        "data.n_features is 2 but data.n_classes 3 needs at least 3 features",
    ),
    ("validate", {"data.kind": "toy"}, "data.val_size is 0.2; expected 0 for the toy set"),
    # a user's table: where it must lie and what must be named
    ("validate", {**TABLE, "data.path": '"wine.csv"'}, "data.path is 'wine.csv'; expected a file"),
    ("validate", {**TABLE, "data.path": '"data/raw/../x.csv"'}, "expected a file under data/raw/"),
    ("validate", {**TABLE, "data.path": '""'}, "data.path is empty; expected a CSV or Parquet"),
    ("validate", {**TABLE, "data.target": '""'}, "data.target is empty; expected the name of"),
    ("validate", {**TABLE, "data.features": '["y"]'}, "data.features lists 'y', the target"),
    ("validate", {**TABLE, "data.features": '["a", "a"]'}, "data.features lists 'a' twice"),
    ("validate", {"data.features": "[1]"}, "data.features is [1]; expected a list of column names"),
    ("validate", {"data.standardize": "1"}, "data.standardize is 1; expected true or false"),
    # not a params file
    ("validate", "train: {lr: 0.1\n", "params.yaml: not valid YAML at line 2"),
    ("validate", "train:\n  lr: 0.1\n  lr: 0.5\n", "not valid YAML at line 3 (key 'lr' appea"),
    ("validate", "- 1\n- 2\n", "params.yaml: the top level is [1, 2]; expected a mapping"),
    # every stage checks the whole file before it reads anything else
    ("generate", {"data.n_classes": "1"}, "params.yaml: data.n_classes is 1; expected at least"),
    ("train", {"train.lrr": "0.1"}, "unknown key 'train.lrr'; did you mean 'train.lr'?"),
    ("evaluate", {"evaluate.batch_size": "0"}, "evaluate.batch_size is 0; expected 1 or more"),
    ("export", {"export.model_name": '""'}, "export.model_name is ''; expected a non-empty"),
]


# How a file gets broken: each returns a function that breaks the file at the given path.
def deleted():
    return lambda path: path.unlink()


def truncated():
    return lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def text(content: str):
    return lambda path: path.write_text(content)


def npz(**arrays):
    def write(path: Path) -> None:
        with open(path, "wb") as handle:  # np.savez would append .npz to other names
            np.savez(handle, **arrays)

    return write


def data_split(**changes):
    """A split like generate's (float32 features of width 4, int64 labels), with `changes`."""
    arrays = {"features": np.ones((6, 4), np.float32), "labels": np.arange(6) % 3, **changes}
    return npz(**arrays)


def state_dict_of(hidden: tuple[int, ...]):
    """The state_dict of a 4-input 3-class MLP with other hidden layers."""
    return lambda path: torch.save(build_model(Architecture(4, hidden, 3)).state_dict(), path)


def torch_saved(obj):
    return lambda path: torch.save(obj, path, pickle_module=pickle)


class RunsCode:
    """Unpickling this runs a shell command that leaves a file behind (the snapshot sees it)."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


# Bad files: (stage, file, how it is broken, fragments of the error).
BAD_FILES = [
    # data splits
    ("train", "data/train.npz", deleted(), "data/train.npz: file not found; run `dvc repro"),
    ("train", "data/train.npz", truncated(), "data/train.npz: unreadable or truncated; expected"),
    ("train", "data/train.npz", npz(x=np.zeros(3)), "data/train.npz: holds arrays ['x']; exp"),
    ("evaluate", "data/test.npz", text("a,b\n1,2\n"), "data/test.npz: not an .npz archive"),
    (
        "train",
        "data/train.npz",
        data_split(labels=np.array([object()] * 6)),
        "data/train.npz: refused, it holds pickled objects",
    ),
    (
        "train",
        "data/val.npz",
        data_split(features=np.ones((6, 4))),
        "data/val.npz: dtypes float64/int64 instead of float32/int64",
    ),
    (
        "train",
        "data/train.npz",
        data_split(features=np.full((6, 4), np.nan, np.float32)),
        "data/train.npz: features include NaN or infinity",
    ),
    (
        "train",
        "data/train.npz",
        data_split(labels=np.array([-1, 0, 1, 2, 0, 1])),
        "data/train.npz: labels include -1; class indices start at 0",
    ),
    (
        "train",
        "data/val.npz",
        data_split(features=np.ones((6, 5), np.float32)),
        "data/val.npz: 5 features; expected 4 as in data/train.npz",
    ),
    (
        "evaluate",
        "data/test.npz",
        data_split(features=np.ones((6, 5), np.float32)),
        "data/test.npz: 5 features; the model in models/checkpoint.pth expects 4",
    ),
    # models: truncated, another architecture, a model.json that does not match
    ("predict", "models/model.pth", truncated(), "models/model.pth: unreadable or truncated"),
    ("evaluate", "models/checkpoint.pth", truncated(), "checkpoint.pth: unreadable or truncated"),
    ("export", "models/checkpoint.pth", deleted(), "checkpoint.pth: file not found; expected a"),
    (
        "predict",
        "models/model.pth",
        state_dict_of((7,)),
        "models/model.pth: does not fit the architecture in model.json (4-6-5-3)",
        "missing ['layers.4.bias', 'layers.4.weight']",
        "layers.0.weight (7, 4) vs (6, 4)",
    ),
    (
        "predict",
        "models/model.pth",
        state_dict_of((6, 5, 5)),
        "unexpected ['layers.6.bias', 'layers.6.weight']",
        "layers.4.weight (5, 5) vs (3, 5)",
    ),
    (
        "predict",
        "models/model.json",
        text('{"num_inputs": 4, "hidden": [9], "num_outputs": 3}'),
        "models/model.pth: does not fit the architecture in model.json (4-9-3): unexpected",
        "shapes ['layers.0.weight (6, 4) vs (9, 4)'",
    ),
    (
        "predict",
        "models/model.json",
        text('{"num_inputs": 4, "hidden": [-1], "num_outputs": 3}'),
        "models/model.json: hidden holds -1; expected JSON with num_inputs, hidden (a list)",
    ),
    ("predict", "models/model.json", text("{"), "models/model.json: not JSON; expected JSON"),
    ("predict", "models/model.json", deleted(), "models/model.json: file not found"),
    # untrusted pickles: refused, and nothing in them runs
    (
        "predict",
        "models/model.pth",
        torch_saved({"layers.0.weight": RunsCode()}),
        "models/model.pth: refused, it holds objects other than tensors",
    ),
    (
        "evaluate",
        "models/checkpoint.pth",
        torch_saved({"layers.0.weight": RunsCode()}),
        "models/checkpoint.pth: refused, it holds objects other than tensors",
    ),
    (
        "predict",
        "models/model.pth",
        torch_saved(build_model(Architecture(4, (6, 5), 3))),
        "models/model.pth: refused, it holds objects other than tensors",
    ),
    (
        "predict",
        "models/model.pth",
        torch_saved({"layers.0.weight": 1}),
        "models/model.pth: 'layers.0.weight' holds int; expected a state_dict of tensors",
    ),
    # the link from train to evaluate/export, and predict's input
    ("evaluate", "metrics/train.json", text("{"), "metrics/train.json: not JSON with mlflow_run"),
    ("predict", "points.csv", deleted(), "points.csv: file not found; expected a CSV"),
    ("predict", "points.csv", text("1,2\n"), "points.csv: data row 1 is '1,2'; expected 4 nu"),
    (
        "predict",
        "points.csv",
        text("x0,x1,x2\n1,2,3\n"),
        "points.csv: no column 'x3'; expected a column for each of the model's features: x0, x1",
    ),
    (
        "predict",
        "points.csv",
        text("x0,x1,x2,x3\n1,2,3,4\n1,2,abc,4\n"),
        "points.csv: column 'x2' is not numeric: row 2 (line 3) holds 'abc'",
    ),
    # the search space of a study (tune.yaml)
    ("tune", "tune.yaml", deleted(), "tune.yaml: file not found; expected a study's settings"),
    ("tune", "tune.yaml", text("space: [\n"), "tune.yaml: not valid YAML at line 2"),
    ("tune", "tune.yaml", text("space: {}\n"), "tune.yaml: top level is ['space']; expected"),
    (
        "tune",
        "tune.yaml",
        space("data.n_samples: {choices: [100, 200]}"),
        "tune.yaml: space.data.n_samples is refused (it would change the data splits)",
    ),
    ("tune", "tune.yaml", space("seed: {low: 1, high: 9}"), "space.seed is refused (it would"),
    (
        "tune",
        "tune.yaml",
        space("train.log_every: {choices: [1, 2]}"),
        "space.train.log_every is refused (it is not a params.yaml key that changes a trial's",
    ),
    (
        "tune",
        "tune.yaml",
        space("train.lrr: {low: 0.1, high: 1}"),
        "tune.yaml: unknown key 'train.lrr'; did you mean 'train.lr'?",
    ),
    (
        "tune",
        "tune.yaml",
        space("train.lr: {low: 0, high: 1}"),
        "tune.yaml: space.train.lr: train.lr is 0.0; expected a finite number above 0",
    ),
    (
        "tune",
        "tune.yaml",
        space("train.lr: {low: 0.5, high: 0.1}"),
        "space.train.lr: low 0.5 is not below high 0.1; expected low < high",
    ),
    (
        "tune",
        "tune.yaml",
        space("train.epochs: {low: 1, high: 2.5}"),
        "space.train.epochs bound is 2.5; expected whole numbers",
    ),
    (
        "tune",
        "tune.yaml",
        space("train.lr: {high: 1}"),
        "space.train.lr is {'high': 1}; expected {choices: [...]} or {low, high[, log]}",
    ),
    (
        "tune",
        "tune.yaml",
        space("train.optimizer: {choices: [sgd, lbfgs]}"),
        "space.train.optimizer.choices: train.optimizer is 'lbfgs'; expected one of sgd, adam",
    ),
    (
        "tune",
        "tune.yaml",
        space("model.hidden: {choices: [[8, 4], [8, 0]]}"),
        "space.model.hidden.choices: model.hidden is [8, 0]; expected a non-empty list",
    ),
    (
        "tune",
        "tune.yaml",
        space("train.batch_size: {choices: [8, 500]}"),
        "train.batch_size is 500 with drop_last, but each of 1 process(es) gets 72 training",
    ),
    (
        "tune",
        "tune.yaml",
        space("train.lr: {low: 0.1, high: 1}", study="{name: s, seed: -1}"),
        "tune.yaml: study is {'name': 's', 'seed': -1}; expected the keys name, seed, pruner_",
    ),
    (
        "tune",
        "data/val.npz",
        data_split(features=np.ones((0, 4), np.float32), labels=np.zeros(0, np.int64)),
        "data/val.npz: no validation rows; expected data.val_size above 0 in params.yaml",
    ),
]


# What sits at the store's file: a function of the bytes of a fresh, real MLflow store.
def store_file(make):
    def write(path: Path, mlflow_store: bytes) -> None:
        path.write_bytes(make(mlflow_store))

    return write


def a_directory(path: Path, mlflow_store: bytes) -> None:
    path.mkdir()


def other_sqlite_database(path: Path, mlflow_store: bytes) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE trials (number INTEGER)")
        db.commit()


# Bad tracking stores, for `train` (it opens the run): (MLFLOW_TRACKING_URI, or None for the
# embedded store <workspace>/mlflow.db; what to put at mlflow.db, or None; fragments). Drivers
# named here are not installed in this environment (test_the_battery_is_sound checks).
BAD_STORES = [
    # not a URI at all
    ("", None, "error: MLFLOW_TRACKING_URI is empty; expected sqlite:///<path>.db"),
    (" sqlite:///mlflow.db", None, "MLFLOW_TRACKING_URI=' sqlite:///mlflow.db': spaces around"),
    ("mlflow.db", None, "MLFLOW_TRACKING_URI=mlflow.db: not a URI; expected sqlite:///", "(for"),
    ("mlruns", None, "MLFLOW_TRACKING_URI=mlruns: not a URI; expected sqlite:///<path>.db"),
    ("127.0.0.1:5000", None, "MLFLOW_TRACKING_URI=127.0.0.1:5000: not a URI; expected"),
    # schemes MLflow does not know
    ("htpp://127.0.0.1:5000", None, "unknown scheme 'htpp' (did you mean 'http'?); expected"),
    ("postgres://u:secret@127.0.0.1/db", None, "=postgres://u:***@127", "did you mean 'postg"),
    ("sqllite:///mlflow.db", None, "unknown scheme 'sqllite' (did you mean 'sqlite'?)"),
    ("ftp://127.0.0.1/runs", None, "unknown scheme 'ftp'; expected one of databricks, data"),
    # addresses
    ("http:/127.0.0.1:5000", None, "=http:/127.0.0.1:5000: no host; expected http://host:port"),
    ("http://", None, "MLFLOW_TRACKING_URI=http://: no host; expected http://host:port"),
    ("http://127.0.0.1:50OO", None, "port '50OO' is not a number from 1 to 65535; expected"),
    ("https://127.0.0.1:99999", None, "port '99999' is not a number from 1 to 65535"),
    ("http://[::1:5000", None, "not a valid URI (Invalid IPv6 URL)"),
    ("postgresql+psycopg2://u:p@127.0.0.1:5x/db", None, "port '5x' is not a number"),
    # database drivers
    (
        "postgresql://u:p@127.0.0.1/db",
        None,
        "the postgresql (SQLAlchemy's default) driver, psycopg, is not installed; pip install",
        "or write postgresql+psycopg2:// and pip install -e '.[team]' (the project's team extra",
    ),
    ("postgresql+pg8000://127.0.0.1/db", None, "pg8000, is not installed", "'.[team]'"),
    ("postgresql+psycopg3://127.0.0.1/db", None, "unknown postgresql driver 'psycopg3'; expec"),
    ("mysql://u:p@127.0.0.1/db", None, "the mysql (SQLAlchemy's default) driver, MySQLdb, is"),
    ("mssql+pymssql://127.0.0.1/db", None, "driver, pymssql, is not installed; pip install"),
    # SQLite URIs
    ("sqlite://mlflow.db", None, "expected sqlite:///<path> (three slashes, then the path"),
    ("sqlite:/mlflow.db", None, "=sqlite:/mlflow.db: expected sqlite:///<path> (three slash"),
    ("sqlite:///", None, "no database file (an in-memory store vanishes with the process)"),
    ("sqlite:///models", None, "error: models: is a directory; expected an SQLite file"),
    ("sqlite:///params.yaml/mlflow.db", None, "params.yaml is not a directory; expected a dir"),
    # the SQLite file itself, as the embedded default or named by the variable
    (None, store_file(lambda _: b"not a database\n"), "mlflow.db: not an SQLite database (it"),
    ("sqlite:///mlflow.db", store_file(lambda _: b"{}"), "error: mlflow.db: not an SQLite da"),
    (None, a_directory, "mlflow.db: is a directory; expected an SQLite file such as"),
    (None, other_sqlite_database, "mlflow.db: an SQLite database but not an MLflow store"),
    (None, store_file(lambda db: db[: len(db) // 2]), "mlflow.db: a damaged SQLite database ("),
    (
        None,
        store_file(lambda db: db[:100] + bytes(range(256)) * 15 + db[3940:]),
        "mlflow.db: a damaged SQLite database (database disk image is malformed); expected an",
    ),
]


# Bad tables (issue 10 §6): each stops generate with one line naming the file, the column or
# row, and what was expected. The valid table: 40 rows, features a, b, c and classes p, q.
def table_csv(rows: int = 40, header: str = "a,b,c,y", cell=None, label=None) -> str:
    """The valid table as CSV text; `cell(i)` / `label(i)` replace row i's b / y (when not None)."""
    lines = [header]
    for i in range(rows):
        b = cell(i) if cell and cell(i) is not None else f"{i * 0.5}"
        y = label(i) if label and label(i) is not None else "pq"[i % 2]
        lines.append(f"{i},{b},{i % 7},{y}")
    return "\n".join(lines) + "\n"


def parquet(**columns):
    def write(path: Path) -> None:
        import pandas as pd

        pd.DataFrame({"a": range(40), "b": [0.5] * 40, "y": ["p", "q"] * 20, **columns}).to_parquet(
            path
        )

    return write


def at_row(n: int, value: str):
    return lambda i: value if i == n - 1 else None


# (params edits beyond TABLE, file under data/raw, how it is written, fragments of the error).
BAD_TABLES = [
    ({"data.path": '"data/raw/none.csv"'}, None, None, "data/raw/none.csv: file not found"),
    ({"data.path": '"data/raw/t.xlsx"'}, "t.xlsx", text("a"), "t.xlsx: unknown extension '.xlsx'"),
    ({}, "t.csv", lambda p: p.write_bytes(b"\xff\xfe\x00a,b"), "t.csv: not UTF-8 CSV text"),
    (
        {"data.path": '"data/raw/t.parquet"'},
        "t.parquet",
        text("PAR1 not really"),
        "data/raw/t.parquet: unreadable (",
        "expected a Parquet file",
    ),
    ({}, "t.csv", text(""), "data/raw/t.csv: empty; expected a header row"),
    ({}, "t.csv", text(table_csv(header="1,2,3,4")), "holds numbers only, no header; expected"),
    (
        {"data.target": '"label"'},
        "t.csv",
        text(table_csv()),
        "data/raw/t.csv: no column 'label' (data.target); the columns are a, b, c, y",
    ),
    (
        {"data.features": '["a", "zz"]'},
        "t.csv",
        text(table_csv()),
        "data/raw/t.csv: no column 'zz' (data.features); the columns are a, b, c, y",
    ),
    ({}, "t.csv", text(table_csv(header="a,a,c,y")), "t.csv: column 'a' appears twice"),
    ({}, "t.csv", text(table_csv(header=",b,c,y")), "t.csv: column 1 has no name"),
    (
        {},
        "t.csv",
        text(table_csv(cell=at_row(3, "abc"))),
        "data/raw/t.csv: column 'b' is not numeric: row 3 (line 4) holds 'abc'; expected numbers",
    ),
    (
        {"data.path": '"data/raw/t.parquet"'},
        "t.parquet",
        parquet(b=["0.5"] * 39 + ["red"]),
        "data/raw/t.parquet: column 'b' is not numeric: row 40 holds 'red'",
    ),
    # Blank, NA and NaN cells are missing values (imputed, issue 17); what cannot be a feature:
    (
        {},
        "t.csv",
        text(table_csv(cell=lambda i: "")),
        "data/raw/t.csv: column 'b' has no value at all; expected some values (leave it out with",
    ),
    (
        {},
        "t.csv",
        text(table_csv(cell=lambda i: f"name {i}")),
        "data/raw/t.csv: column 'b' looks like an identifier (40 distinct values in 40 filled",
    ),
    (
        {"data.max_categories": "10"},
        "t.csv",
        text(table_csv(cell=lambda i: f"k{i % 20}")),
        "data/raw/t.csv: column 'b' holds 20 categories, more than data.max_categories (10);",
        "leave it out with data.drop, or raise data.max_categories",
    ),
    ({}, "t.csv", text(table_csv(cell=at_row(2, "inf"))), "row 2 (line 3), column 'b' is infin"),
    ({}, "t.csv", text(table_csv(cell=at_row(4, "1,2"))), "t.csv: not well-formed CSV ("),
    (
        {},
        "t.csv",
        text(table_csv(label=lambda i: f"{i / 3:.2f}")),
        "target column 'y' holds '0.33' (row 2); expected class labels",
        "regression is not supported",
    ),
    (
        {},
        "t.csv",
        text(table_csv(label=lambda i: "p")),
        "data/raw/t.csv: target column 'y' holds one class ('p'); expected at least 2 classes",
    ),
    (
        {},
        "t.csv",
        text(table_csv(label=at_row(40, "r"))),
        "data/raw/t.csv: class 'r' of column 'y' has 1 row(s), too few to stratify the splits",
    ),
    (
        {},
        "t.csv",
        text(table_csv(rows=4)),
        "data/raw/t.csv: 4 rows give the test split 1 rows",
        "fewer than the 2 classes",
    ),
]


def table_id(row) -> str:
    return f"{row[1]}:{row[3][:60]}"


@pytest.mark.parametrize("row", BAD_TABLES, ids=[table_id(row) for row in BAD_TABLES])
def test_bad_tables_are_refused_with_one_line(forker, workspace, row):
    edits, name, writes, *fragments = row
    (workspace / "data/raw").mkdir(parents=True, exist_ok=True)
    if name:
        writes(workspace / "data/raw" / name)
    (workspace / "params.yaml").write_text(params_text({**TABLE, **edits}))
    assert_refused(forker, workspace, "generate", tuple(fragments))


def test_the_valid_table_passes(workspace):
    """The bad tables are each one change away from a table that generate accepts."""
    (workspace / "data/raw").mkdir(parents=True)
    (workspace / "data/raw/t.csv").write_text(table_csv())
    (workspace / "params.yaml").write_text(params_text(TABLE))
    done = run(stage_command("generate"), workspace, env=stage_env(workspace))
    assert done.stdout == "generated train: 24 rows, val: 6 rows, test: 10 rows\n"


def params_text(edits: dict[str, str]) -> str:
    """BASELINE as YAML with `edits` ({dotted key: YAML text}) written verbatim."""
    values = {key: json.dumps(value) for key, value in flat_baseline().items()}
    values = {key: text for key, text in values.items() if key.split(".")[0] not in edits}
    values.update(edits)
    top, sections = [], {}
    for key, text in values.items():
        section, _, name = key.rpartition(".")
        if section:
            sections.setdefault(section, []).append(f"  {name}: {text}")
        else:
            top.append(f"{name}: {text}")
    for section, lines in sections.items():
        top += [f"{section}:", *lines]
    return "\n".join(top) + "\n"


def flat_baseline() -> dict:
    flat = {}
    for key, value in BASELINE.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            flat[key] = value
    return flat


def stage_command(stage: str, args: str | None = None) -> list[str]:
    # The dvc.yaml stages are pipeline.stages.*; the user commands (tune, predict) pipeline.*.
    module = f"pipeline.{stage}" if stage in USER_COMMANDS else f"pipeline.stages.{stage}"
    return [sys.executable, "-m", module, *(args or STAGES[stage]).split()]


def stage_env(workspace: Path) -> dict[str, str]:
    # A store of its own: a stage that refuses must not even create it.
    return clean_env(
        MLFLOW_TRACKING_URI=f"sqlite:///{workspace / 'mlflow.db'}", PYTHONPATH=str(ROOT)
    )


@pytest.fixture(scope="module")
def valid_workspace(tmp_path_factory) -> Path:
    """Every input a stage reads, made by the real stages from BASELINE (tracking off)."""
    workspace = tmp_path_factory.mktemp("valid")
    (workspace / "params.yaml").write_text(params_text({}))
    env = clean_env(PIPELINE_TRACKING="0", PYTHONPATH=str(ROOT))
    for stage in ("validate", "generate", "train", "evaluate", "export"):
        run(stage_command(stage), workspace, env=env)
    (workspace / "points.csv").write_text("x0,x1,x2,x3\n0.1,0.2,0.3,0.4\n")
    (workspace / "tune.yaml").write_text(TUNE_SPACE)
    return workspace


@pytest.fixture
def workspace(valid_workspace, tmp_path) -> Path:
    copy = tmp_path / "workspace"
    shutil.copytree(valid_workspace, copy)
    return copy


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def forker(tmp_path_factory) -> CommandForker:
    """The stages as forked processes: each row pays its stage's work, not Python's start-up."""
    forker = CommandForker(tmp_path_factory.mktemp("forker"))
    yield forker
    forker.close()


def assert_refused(
    forker: CommandForker,
    workspace: Path,
    stage: str,
    fragments: tuple[str, ...],
    args: str | None = None,
    env: dict | None = None,
) -> None:
    before = snapshot(workspace)
    _, _, module, *arguments = stage_command(stage, args)
    done = forker.run(module, arguments, workspace, env or stage_env(workspace))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    after = snapshot(workspace)
    assert sorted(after) == sorted(before), "a refusing stage created or deleted files"
    assert after == before, "a refusing stage changed a file"


def params_id(row) -> str:
    stage, edits, _ = row
    what = ",".join(f"{k}={v}" for k, v in edits.items()) if isinstance(edits, dict) else edits
    return f"{stage}:{what!r}"


@pytest.mark.parametrize("row", BAD_PARAMS, ids=[params_id(row) for row in BAD_PARAMS])
def test_bad_params_are_refused_with_one_line(forker, workspace, row):
    stage, edits, fragment = row
    text = params_text(edits) if isinstance(edits, dict) else edits
    (workspace / "params.yaml").write_text(text)
    assert_refused(forker, workspace, stage, (fragment,))


@pytest.mark.parametrize(
    "row",
    BAD_FILES,
    ids=[f"{row[0]}:{row[1]}:{row[3][:50]}" for row in BAD_FILES],
)
def test_bad_files_are_refused_with_one_line(forker, workspace, row):
    stage, name, breaks, *fragments = row
    breaks(workspace / name)
    assert_refused(forker, workspace, stage, tuple(fragments))


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory) -> bytes:
    """The bytes of a fresh MLflow SQLite store, as MLflow itself creates it."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path.read_bytes()


@pytest.mark.parametrize(
    "row", BAD_STORES, ids=[f"{row[0]!r}:{row[-1][:40]}" for row in BAD_STORES]
)
def test_bad_tracking_stores_are_refused_with_one_line(forker, workspace, mlflow_store, row):
    uri, prepare, *fragments = row
    if prepare is not None:
        prepare(workspace / "mlflow.db", mlflow_store)
    env = clean_env(PYTHONPATH=str(ROOT))  # no MLFLOW_TRACKING_URI: the embedded store
    if uri is not None:
        env["MLFLOW_TRACKING_URI"] = uri
    assert_refused(forker, workspace, "train", tuple(fragments), env=env)


def test_predict_from_a_registry_without_a_store_creates_none(forker, workspace):
    args = "--model models:/mlp-pipeline@champion --input points.csv"
    fragment = "mlflow.db: no MLflow store there; expected a store holding the registry"
    assert_refused(forker, workspace, "predict", (fragment,), args)


def test_params_missing_altogether(forker, workspace):
    (workspace / "params.yaml").unlink()
    assert_refused(forker, workspace, "validate", ("params.yaml: file not found",))


def test_the_battery_is_sound(valid_workspace):
    """The rows break a workspace that every stage accepts, and they cover every stage."""
    assert Params().flat().keys() >= flat_baseline().keys()
    for stage in ("validate", "predict"):
        done = run(stage_command(stage), valid_workspace, env=stage_env(valid_workspace))
        assert done.stderr == ""
    assert {row[0] for row in BAD_PARAMS + BAD_FILES} == set(STAGES)
    # The driver rows of BAD_STORES hold only while these are not installed.
    for module in ("psycopg", "pg8000", "MySQLdb", "pymssql"):
        assert importlib.util.find_spec(module) is None, module


def test_the_tune_battery_is_sound(workspace):
    """The space the tune rows break runs a trial in the valid workspace."""
    done = run(stage_command("tune"), workspace, env=stage_env(workspace))
    assert "trial 0: val_accuracy" in done.stdout, done.stdout + done.stderr


# Bad command lines of `pipeline.tune`: (arguments replacing --trials 1 ... --storage, error).
BAD_TUNE_ARGS = [
    ("--trials 0", "--trials is 0; expected 1 or more (or --best, --apply)"),
    (
        "--trials 1 --storage sqlite:///no/such/dir/optuna.db",
        "--storage sqlite:///no/such/dir/optuna.db: cannot open (",
    ),
    (
        "--trials 1 --storage postgresql://u:secret@127.0.0.1:1/optuna",
        "--storage postgresql+psycopg2://u:***@127.0.0.1:1/optuna: cannot open (",
    ),
    ("--best --storage sqlite:///optuna.db", "study 'battery': not found in sqlite:///optuna.db"),
]


@pytest.mark.parametrize("args, fragment", BAD_TUNE_ARGS)
def test_bad_tune_arguments_are_refused_with_one_line(
    forker, workspace, args, fragment, monkeypatch
):
    fixed = "--params params.yaml --data data --space tune.yaml"
    monkeypatch.setitem(STAGES, "tune", f"{fixed} {args}")
    assert_refused(forker, workspace, "tune", (fragment,))


def test_a_bare_exponent_is_a_number(workspace):
    (workspace / "params.yaml").write_text(params_text({"train.lr": "1e-3"}))
    done = run(stage_command("validate"), workspace, env=stage_env(workspace))
    assert done.returncode == 0
    assert load_params(workspace / "params.yaml").train.lr == 0.001


# What `dvc repro` must leave alone when params.yaml is bad.
# validate's own marker goes (DVC removes it before validate refuses the params).
OUTPUTS = (*(name for name in PIPELINE_OUTPUTS if name != "data/params.ok"), "dvc.lock")


@pytest.mark.e2e
def test_dvc_repro_refuses_bad_params_before_any_stage_writes(project):
    write_params(project / "params.yaml", SMALL_PARAMS)
    commit_all(project, "small params")
    run(["dvc", "repro"], project)
    good = (project / "params.yaml").read_text()
    before = {name: (project / name).read_bytes() for name in OUTPUTS}

    raw = yaml.safe_load(good)
    broken = [
        # a key no stage declares: only validate's whole-file dependency sees it
        ({**raw, "learning_rate": 0.1}, "params.yaml: unknown key 'learning_rate'"),
        # a key of train's section, a key of generate's section
        ({**raw, "train": {**raw["train"], "lr": -1}}, "params.yaml: train.lr is -1.0"),
        ({**raw, "data": {**raw["data"], "n_classes": 1}}, "params.yaml: data.n_classes is 1"),
    ]
    for params, fragment in broken:
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        done = run(["dvc", "repro"], project, check=False)
        assert done.returncode != 0
        assert "Traceback" not in done.stdout + done.stderr
        ours = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(ours) == 1 and fragment in ours[0], done.stderr
        assert "Running stage 'validate'" in done.stdout
        for stage in ("generate", "train", "evaluate", "export"):
            assert f"Running stage '{stage}'" not in done.stdout
        for name in OUTPUTS:
            assert (project / name).read_bytes() == before[name], name

    # Back to the good params: nothing retrains, and validate's marker (the one output DVC
    # removes when validation fails) comes back from DVC's run cache.
    (project / "params.yaml").write_text(good)
    done = run(["dvc", "repro"], project)
    assert "Running stage" not in done.stdout
    assert (project / "data/params.ok").exists()
    for name in OUTPUTS:
        assert (project / name).read_bytes() == before[name], name


# Untrusted models and safe defaults (issue 6 §5).
def calls_in_pipeline() -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                found.append((f"{path.name}:{node.lineno} {ast.unparse(node.func)}", node))
    return found


def keyword(call: ast.Call, name: str):
    return next((ast.unparse(k.value) for k in call.keywords if k.arg == name), None)


def test_the_pipeline_loads_no_pickled_model():
    """State_dicts with weights_only=True, arrays without pickles, never an MLflow model (a
    pickle of the whole module) or a plain pickle."""
    loads = 0
    for where, call in calls_in_pipeline():
        name = where.split(" ")[1]
        assert not name.endswith("load_model"), where
        assert name not in ("pickle.load", "pickle.loads", "torch.jit.load"), where
        if name == "torch.load":
            assert keyword(call, "weights_only") == "True", where
            loads += 1
        if name == "np.load":
            assert keyword(call, "allow_pickle") == "False", where
            loads += 1
    assert loads >= 2  # checkpoint.py's torch.load and data.py's np.load were seen

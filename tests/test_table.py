"""A user's table: formats, classes, standardization (issue 10 §1-§2; issue 17: by the table's
encoding, fitted on the training split, not by the module).

References: the table itself as pandas reads it, and scikit-learn's StandardScaler fitted on
the same training rows. The stages run in-process with tracking off.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

from pipeline.config.params import build
from pipeline.config.schema import DataParams
from pipeline.data.splits import load_split
from pipeline.data.synthetic import split_rows
from pipeline.data.table import table_splits
from pipeline.model import checkpoint
from pipeline.model.network import Architecture
from pipeline.stages import generate, train

CULTIVARS = {0: "barolo", 1: "grignolino", 2: "barbera"}


def wine() -> pd.DataFrame:
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map(CULTIVARS)
    return frame


def table_params(path, **data) -> DataParams:
    return DataParams(kind="table", path=str(path), target="cultivar", **data)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_becomes_splits_of_its_rows_with_names_and_sorted_classes(table_workspace, suffix):
    frame = wine()
    path = table_workspace / f"data/raw/wine{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    splits = table_splits(table_params(f"data/raw/wine{suffix}"), seed=3)

    names = tuple(c for c in frame.columns if c != "cultivar")
    assert splits["train"].classes == ("barbera", "barolo", "grignolino")
    assert {len(s) for s in splits.values()} != {0}
    assert sum(len(s) for s in splits.values()) == len(frame)
    for split in splits.values():
        # Standardized by the encoding (no missing cell: no indicator), not by the module.
        assert split.feature_names == names and not split.standardize
        assert split.encoding.raw_columns == names
        assert split.source == f"data/raw/wine{suffix}"
    # Every split row, its standardization undone, is a row of the table with its own label.
    table_rows = frame[list(names)].to_numpy(np.float64)
    for split in splits.values():
        raw = split.encoding.decode(split.features).to_numpy(np.float64)
        for row, label in zip(raw, split.labels, strict=True):
            near = np.isclose(table_rows, row, rtol=1e-5, atol=1e-5).all(axis=1)
            assert near.any() and set(frame["cultivar"][near]) == {split.classes[label]}


def test_features_are_exactly_the_named_columns_in_that_order(table_workspace):
    wine().to_csv(table_workspace / "data/raw/wine.csv", index=False)
    data = table_params("data/raw/wine.csv", features=("proline", "alcohol"))
    split = table_splits(data, seed=3)["test"]
    frame = wine()
    assert split.feature_names == ("proline", "alcohol")
    wanted = frame[["proline", "alcohol"]].to_numpy(np.float64)
    for row in split.encoding.decode(split.features).to_numpy(np.float64):
        assert np.isclose(wanted, row, rtol=1e-5, atol=1e-5).all(axis=1).any()


def test_whole_number_labels_stay_numbers_sorted_as_numbers(table_workspace):
    frame = wine()
    frame["cultivar"] = frame["cultivar"].map({"barolo": 10, "grignolino": 2, "barbera": 7})
    frame.to_csv(table_workspace / "data/raw/wine.csv", index=False)
    split = table_splits(table_params("data/raw/wine.csv"), seed=3)["train"]
    assert split.classes == (2, 7, 10)
    assert all(isinstance(c, int) for c in split.classes)


def test_standardize_defaults_to_true_for_tables_only():
    assert DataParams(kind="table").standardize is True
    assert DataParams(kind="classification").standardize is False
    assert DataParams(kind="toy").standardize is False
    assert build({"data": {"kind": "table", "standardize": False}}).data.standardize is False
    assert build({"data": {"standardize": True}}).data.standardize is True


def run_generate_and_train(table_workspace, frame: pd.DataFrame) -> torch.nn.Module:
    frame.to_csv(table_workspace / "data/raw/wine.csv", index=False)
    (table_workspace / "params.yaml").write_text(
        "seed: 5\ndata: {kind: table, path: data/raw/wine.csv, target: cultivar}\n"
        "train: {epochs: 1, batch_size: 16, device: cpu}\n"
    )
    assert generate.main([]) == 0
    assert train.main([]) == 0
    return checkpoint.load(table_workspace / "models/checkpoint.pth")[0]


def train_statistics(model_json) -> tuple[np.ndarray, np.ndarray]:
    columns = json.loads(model_json.read_text())["encoding"]["columns"]
    return np.array([c["mean"] for c in columns]), np.array([c["scale"] for c in columns])


def test_standardization_is_the_training_splits_alone_as_standard_scaler_has_it(table_workspace):
    frame = wine()
    frame["constant"] = 4.0  # its deviation is 0: the scale stays 1, no division by zero
    model = run_generate_and_train(table_workspace, frame)
    assert model.standardize is None  # the encoding standardizes, in model.json
    labels = pd.factorize(frame["cultivar"], sort=True)[0]
    index = np.arange(len(frame))[:, None]
    rows = split_rows(index, labels, test_size=0.2, val_size=0.1, seed=5)
    train_rows = frame.drop(columns="cultivar").iloc[rows["train"][0][:, 0]]
    scaler = StandardScaler().fit(train_rows)
    mean, scale = train_statistics(table_workspace / "models/checkpoint.json")
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-12)
    assert scale[-1] == 1.0
    np.testing.assert_allclose(
        load_split(table_workspace / "data/train.npz").features,
        scaler.transform(train_rows),
        rtol=1e-5,
        atol=1e-5,
    )

    # Which rows go to validation and test depends on the labels and the seed only: change
    # every such row beyond recognition and the statistics do not move.
    held_out = np.concatenate([kept[:, 0] for name, (kept, _) in rows.items() if name != "train"])
    changed = frame.copy()
    numeric = changed.columns.drop("cultivar")
    changed.loc[held_out, numeric] = changed.loc[held_out, numeric] * 1000 + 7
    assert not np.allclose(StandardScaler().fit(changed[numeric]).mean_, scaler.mean_)
    run_generate_and_train(table_workspace, changed)
    after_mean, after_scale = train_statistics(table_workspace / "models/checkpoint.json")
    assert np.array_equal(after_mean, mean) and np.array_equal(after_scale, scale)


def test_generated_data_keeps_the_notebooks_state_dict_and_default_names(table_workspace):
    (table_workspace / "params.yaml").write_text(
        "data: {kind: toy, val_size: 0}\ntrain: {epochs: 1, batch_size: 2, device: cpu}\n"
    )
    assert generate.main([]) == 0
    assert train.main([]) == 0
    model, arch = checkpoint.load(table_workspace / "models/checkpoint.pth")
    assert model.standardize is None
    assert all(key.startswith("layers.") for key in model.state_dict())
    assert arch.features == ("x0", "x1") and arch.classes == (0, 1)


def test_a_model_json_without_names_loads_with_the_generated_names():
    old = {"num_inputs": 3, "hidden": [4], "num_outputs": 2}
    arch = Architecture.from_dict(old)
    assert arch.features == ("x0", "x1", "x2")
    assert arch.classes == (0, 1)
    assert arch.standardize is False
    named = Architecture(2, (4,), 2, features=("a", "b"), classes=("no", "yes"), standardize=True)
    assert Architecture.from_dict(named.to_dict()) == named


def test_a_training_split_smaller_than_a_batch_stops_train_with_one_line(table_workspace, capsys):
    wine().to_csv(table_workspace / "data/raw/wine.csv", index=False)
    (table_workspace / "params.yaml").write_text(
        "data: {kind: table, path: data/raw/wine.csv, target: cultivar}\n"
        "train: {batch_size: 200, device: cpu}\n"
    )
    assert generate.main([]) == 0
    capsys.readouterr()
    assert train.main([]) == 2
    assert capsys.readouterr().err == (
        "error: data/train.npz: train.batch_size is 200 with drop_last, but each of 1 process(es) "
        "gets 127 training samples; expected a batch size of at most 127 or train.drop_last: "
        "false\n"
    )
    assert not (table_workspace / "models").exists()

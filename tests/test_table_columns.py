"""A table's columns as they come (issue 17): numbers with missing cells, text, booleans.

References: scikit-learn's SimpleImputer(median) + StandardScaler + MissingIndicator for the
numbers, and OneHotEncoder(min_frequency, handle_unknown="infrequent_if_exist") for the rest,
each fitted on the same training rows; the stages run in-process with tracking off.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.config.params import build
from pipeline.config.rules import check_consistency
from pipeline.config.schema import DataParams
from pipeline.data.splits import load_split
from pipeline.data.synthetic import split_indices
from pipeline.data.table import table_splits
from pipeline.model import checkpoint
from pipeline.process.errors import InputError
from pipeline.stages import generate, train

ROWS = 300


def messy(seed: int = 0, rows: int = ROWS) -> pd.DataFrame:
    """Numbers with blank cells, text with rare values and blanks, booleans as text, a label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.normal(10, 3, rows).round(2),
            "weight": rng.normal(70, 12, rows).round(1),
            "count": rng.integers(0, 5, rows),  # whole numbers: a number column too
            "color": rng.choice(
                ["red", "green", "blue", "teal", "plum"], rows, p=[0.4, 0.3, 0.24, 0.03, 0.03]
            ),
            "member": rng.choice(["True", "False"], rows),
            "answer": rng.choice(["yes", "no"], rows),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "size"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "color"] = np.nan
    frame["label"] = np.where(frame["weight"] > 70, "heavy", "light")
    return frame


def params(**data) -> DataParams:
    return DataParams(**{"kind": "table", "path": "data/raw/t.csv", "target": "label", **data})


def training_rows(frame: pd.DataFrame, seed: int = 3) -> dict[str, np.ndarray]:
    codes = pd.factorize(frame["label"], sort=True)[0]
    return split_indices(codes, test_size=0.2, val_size=0.1, seed=seed)


def test_numbers_are_imputed_flagged_and_scaled_as_scikit_learn_does(table_workspace):
    frame = messy()
    frame.to_csv("data/raw/t.csv", index=False)
    splits = table_splits(params(features=("size", "weight", "count")), seed=3)
    rows = training_rows(frame)
    numbers = frame[["size", "weight", "count"]]
    train = numbers.iloc[rows["train"]]
    imputer = SimpleImputer(strategy="median").fit(train)
    scaler = StandardScaler().fit(imputer.transform(train))
    flags = MissingIndicator().fit(train)
    assert splits["train"].feature_names == ("size", "size (missing)", "weight", "count")
    for name, split in splits.items():
        part = numbers.iloc[rows[name]]
        scaled = scaler.transform(imputer.transform(part))
        expected = np.column_stack([scaled[:, 0], flags.transform(part)[:, 0], scaled[:, 1:]])
        np.testing.assert_allclose(split.features, expected, rtol=1e-5, atol=1e-5)
        assert split.features.dtype == np.float32 and split.features.flags.c_contiguous


def test_text_and_booleans_are_one_hot_as_scikit_learns_encoder_with_rare_ones_shared(
    table_workspace,
):
    frame = messy()
    frame.to_csv("data/raw/t.csv", index=False)
    columns = ("color", "member", "answer")
    splits = table_splits(params(features=columns, min_frequency=10), seed=3)
    rows = training_rows(frame)
    # A missing cell is a category of its own: scikit-learn sees it as a string.
    text = frame[list(columns)].fillna("(missing)")
    reference = OneHotEncoder(
        min_frequency=10, handle_unknown="infrequent_if_exist", sparse_output=False
    ).fit(text.iloc[rows["train"]])
    for name, split in splits.items():
        expected = reference.transform(text.iloc[rows[name]])
        # The same slots; scikit-learn sorts "(missing)" first, the encoding puts it last.
        ours = dict(zip(split.feature_names, split.features.T, strict=True))
        theirs = dict(zip(reference.get_feature_names_out(), expected.T, strict=True))
        renamed = {
            key.replace("_infrequent_sklearn", "=(other)").replace("_", "=", 1): value
            for key, value in theirs.items()
        }
        assert set(ours) == set(renamed)
        for key, value in ours.items():
            np.testing.assert_array_equal(value, renamed[key], err_msg=key)
    assert "color=(other)" in splits["train"].feature_names  # teal and plum: rare
    assert "member=True" in splits["train"].feature_names


def encode_new_rows(table_workspace, new: pd.DataFrame) -> np.ndarray:
    from pipeline.data.table_columns import raw_from_frame

    model_json = json.loads((table_workspace / "models/checkpoint.json").read_text())
    from pipeline.model.encoding import TableEncoding, stderr_line

    encoding = TableEncoding.from_dict(model_json["encoding"])
    return encoding.transform(raw_from_frame(new, encoding, "rows"), warn=stderr_line)


def test_a_category_never_seen_is_other_with_one_warning_line_never_a_crash(
    table_workspace, capsys
):
    messy().to_csv("data/raw/t.csv", index=False)
    (table_workspace / "params.yaml").write_text(
        "data: {kind: table, path: data/raw/t.csv, target: label}\n"
        "train: {epochs: 1, device: cpu}\n"
    )
    assert generate.main([]) == 0
    assert train.main([]) == 0
    capsys.readouterr()
    new = messy(seed=1, rows=20)
    new.loc[:9, "color"] = "ultraviolet"  # 10 rows, one warning line
    new.loc[10, "answer"] = "maybe"
    new["member"] = new["member"].astype(object)
    new.loc[11, "member"] = True  # a real boolean: the same category as the text "True"
    features = encode_new_rows(table_workspace, new)
    warning = capsys.readouterr().err.splitlines()
    assert len(warning) == 1
    assert "color='ultraviolet'" in warning[0] and "answer='maybe'" in warning[0]
    arch = checkpoint.load(table_workspace / "models/checkpoint.pth")[1]
    names = list(arch.features)
    assert (features[:10, names.index("color=(other)")] == 1).all()
    answers = [names.index("answer=no"), names.index("answer=yes")]
    assert (features[10, answers] == 0).all()  # no rare answer in training: no slot at all
    assert features[11, names.index("member=True")] == 1
    # What training encoded is encoded the same way from its raw rows again.
    frame = messy()
    test_rows = frame.iloc[training_rows(frame, seed=123)["test"]]
    np.testing.assert_allclose(
        encode_new_rows(table_workspace, test_rows.drop(columns="label")),
        load_split(table_workspace / "data/test.npz").features,
        atol=1e-6,
    )


def test_rows_without_a_target_are_left_out_and_counted(table_workspace, capsys):
    frame = messy()
    frame.loc[[3, 50, 51], "label"] = np.nan
    frame.to_csv("data/raw/t.csv", index=False)
    (table_workspace / "params.yaml").write_text(
        "data: {kind: table, path: data/raw/t.csv, target: label}\n"
    )
    assert generate.main([]) == 0
    assert "data/raw/t.csv: 3 row(s) without a 'label' value left out" in capsys.readouterr().out
    splits = [load_split(f"data/{name}.npz") for name in ("train", "val", "test")]
    assert sum(len(split) for split in splits) == ROWS - 3
    assert {split.rows_without_target for split in splits} == {3}


@pytest.mark.parametrize(
    "change, data, message",
    [
        (
            lambda f: f.assign(name=[f"person {i}" for i in range(len(f))]),
            {},
            "data/raw/t.csv: column 'name' looks like an identifier (300 distinct values in 300 "
            "filled cells): it names rows, it cannot describe new ones; leave it out with "
            "data.drop",
        ),
        (
            lambda f: f.assign(nothing=np.nan),
            {},
            "data/raw/t.csv: column 'nothing' has no value at all; expected some values (leave "
            "it out with data.drop)",
        ),
        (
            lambda f: f.assign(code=[f"c{i % 60}" for i in range(len(f))]),
            {},
            "data/raw/t.csv: column 'code' holds 60 categories, more than data.max_categories "
            "(50); expected fewer (leave it out with data.drop, or raise data.max_categories)",
        ),
        (
            lambda f: f.assign(code=[f"c{i % 60}" for i in range(len(f))]),
            {"drop": ("nope",)},
            "data/raw/t.csv: no column 'nope' (data.drop); the columns are size, weight,",
        ),
        (
            lambda f: f.assign(size=f["size"].where(f.index != 7, np.inf)),
            {},
            "data/raw/t.csv: row 8 (line 9), column 'size' is infinite; expected a number or an "
            "empty cell",
        ),
    ],
)
def test_a_column_that_cannot_be_a_feature_is_refused_in_one_line(
    table_workspace, change, data, message
):
    change(messy()).to_csv("data/raw/t.csv", index=False)
    with pytest.raises(InputError) as refused:
        table_splits(params(**data), seed=3)
    assert str(refused.value).startswith(message)


def test_a_refused_column_stops_generate_before_anything_is_written(table_workspace, capsys):
    messy().assign(name=[f"p{i}" for i in range(ROWS)]).to_csv("data/raw/t.csv", index=False)
    (table_workspace / "params.yaml").write_text(
        "data: {kind: table, path: data/raw/t.csv, target: label}\n"
    )
    assert generate.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data/raw/t.csv: column 'name' looks like an identifier")
    assert err.count("\n") == 1
    assert not list((table_workspace / "data").glob("*.npz"))
    # data.drop leaves it out without listing the other columns.
    (table_workspace / "params.yaml").write_text(
        "data: {kind: table, path: data/raw/t.csv, target: label, drop: [name]}\n"
    )
    assert generate.main([]) == 0
    assert "name" not in load_split("data/train.npz").encoding.raw_columns


def test_a_late_decimal_or_text_cell_changes_the_columns_type_not_the_outcome(table_workspace):
    # pyarrow guesses types from the first block of rows; a cell far below changes its mind.
    frame = messy(rows=40_000)
    frame["count"] = frame["count"].astype(object)
    frame.loc[39_990, "count"] = 2.5  # whole numbers, then a decimal: numbers still
    frame["answer"] = np.where(frame.index < 30_000, "1", frame["answer"])  # then text
    frame.to_csv("data/raw/t.csv", index=False)
    encoding = table_splits(params(max_categories=50), seed=3)["train"].encoding
    kinds = {column["name"]: column["type"] for column in encoding.schema()}
    assert kinds["count"] == "double" and kinds["answer"] == "string"


def test_parquet_booleans_and_categoricals_are_categories(table_workspace):
    frame = messy()
    frame["member"] = frame["member"] == "True"
    frame["color"] = frame["color"].astype("category")
    frame.to_parquet("data/raw/t.parquet")
    names = table_splits(params(path="data/raw/t.parquet"), seed=3)["train"].feature_names
    assert {"member=False", "member=True", "color=red", "color=(missing)"} <= set(names)


def checked(raw: dict):
    params = build(raw)
    check_consistency(params)
    return params


def test_the_new_params_are_validated():
    assert checked({"data": {"drop": ["a"], "min_frequency": 2}}).data.drop == ("a",)
    with pytest.raises(InputError, match="data.min_frequency is 0; expected 1 or more"):
        checked({"data": {"min_frequency": 0}})
    with pytest.raises(InputError, match="data.max_categories is 0; expected 1 or more"):
        checked({"data": {"max_categories": 0}})
    with pytest.raises(InputError, match="data.drop is 'a'; expected a list"):
        checked({"data": {"drop": "a"}})
    table = {"kind": "table", "path": "data/raw/t.csv", "target": "y"}
    with pytest.raises(InputError, match="data.drop lists 'y', the target"):
        checked({"data": {**table, "drop": ["y"]}})

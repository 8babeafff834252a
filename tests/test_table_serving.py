"""Raw rows in, the same probabilities out (issue 17): palmerpenguins' table as it comes (text
columns, blank cells) through generate, train, evaluate and export once, then its test rows,
raw, to `pipeline.predict` and to the real `mlflow models serve`.

Reference: the probabilities of the checkpoint on the encoded test split generate wrote (what
evaluate scores), through pipeline.model.inference.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from importlib import resources

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import clean_env, copy_project, run, write_params
from test_serving import post, served, store_env

from pipeline.data.splits import load_split
from pipeline.data.synthetic import split_indices
from pipeline.model import checkpoint
from pipeline.model.inference import probabilities

pytestmark = pytest.mark.e2e

MODEL = "penguins"
SEED = 12  # its test split holds a row without measurements and rows without sex
PARAMS = {
    "seed": SEED,
    "data": {"kind": "table", "path": "data/raw/penguins.csv", "target": "species"},
    "model": {"hidden": [16], "dropout": 0.1},
    "train": {"epochs": 5, "batch_size": 32, "lr": 0.01, "optimizer": "adam", "device": "cpu"},
    "export": {"register": True, "model_name": MODEL},
}
STAGES = ("generate", "train", "evaluate", "export")


def penguins() -> pd.DataFrame:
    with resources.files("palmerpenguins").joinpath("data/penguins.csv").open() as handle:
        return pd.read_csv(handle)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project whose stages ran once on the raw penguins table, with a registered model."""
    repo = copy_project(tmp_path_factory.mktemp("table-serving") / "repo")
    (repo / "data/raw").mkdir(parents=True, exist_ok=True)
    source = resources.files("palmerpenguins").joinpath("data/penguins.csv")
    with resources.as_file(source) as path:
        shutil.copy(path, repo / "data/raw/penguins.csv")
    write_params(repo / "params.yaml", PARAMS)
    for stage in STAGES:
        run([sys.executable, "-m", f"pipeline.stages.{stage}"], repo, env=store_env(repo))
    frame = penguins()
    codes = pd.factorize(frame["species"], sort=True)[0]
    test = split_indices(codes, test_size=0.2, val_size=0.1, seed=SEED)["test"]
    rows = frame.iloc[test].drop(columns="species").reset_index(drop=True)
    model, _ = checkpoint.load(repo / "models/model.pth")
    expected = probabilities(model, load_split(repo / "data/test.npz").features)
    return repo, rows, expected


def test_the_test_rows_hold_text_and_blank_cells(trained):
    _, rows, expected = trained
    assert rows["island"].dtype.kind in "OT" or str(rows["island"].dtype) == "str"
    assert rows["sex"].isna().sum() >= 1 and rows["bill_length_mm"].isna().sum() == 1
    assert len(rows) == len(expected)


def test_predict_on_raw_rows_gives_evaluates_probabilities(trained):
    repo, rows, expected = trained
    rows.to_csv(repo / "raw.csv", index=False)  # NaN written as blank cells
    done = run(
        [sys.executable, "-m", "pipeline.predict", "--input", "raw.csv", "--decimals", "8"],
        repo,
        env=clean_env(),
    )
    answer = pd.read_csv(pd.io.common.StringIO(done.stdout))
    classes = json.loads((repo / "models/model.json").read_text())["classes"]
    np.testing.assert_allclose(answer[[f"prob_{c}" for c in classes]], expected, atol=1e-5)
    assert done.stderr == ""


def test_the_served_model_answers_raw_rows_as_evaluate_does(trained):
    repo, rows, expected = trained
    cells = [[None if _blank(v) else v for v in row] for row in rows.itertuples(index=False)]
    body = {"dataframe_split": {"columns": list(rows.columns), "data": cells}}
    with served(repo, f"models:/{MODEL}/1") as url:
        status, answer = post(url, body)
    assert status == 200, answer
    classes = json.loads((repo / "models/model.json").read_text())["classes"]
    got = [[row[f"prob_{c}"] for c in classes] for row in answer["predictions"]]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_logged_model_and_dataset_show_the_raw_columns(trained):
    repo, rows, _ = trained
    mlflow.set_tracking_uri(store_env(repo)["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    [version] = client.search_model_versions(f"name = '{MODEL}'")
    info = mlflow.models.get_model_info(f"models:/{MODEL}/1")
    inputs = {spec["name"]: spec["type"] for spec in info.signature.inputs.to_dict()}
    assert inputs == {
        name: "string" if name in ("island", "sex") else "double" for name in rows.columns
    }
    run_ = client.get_run(version.run_id)
    [training] = [d for d in run_.inputs.dataset_inputs if d.dataset.name.endswith("/train")]
    schema = json.loads(training.dataset.schema)["mlflow_colspec"]
    assert [(c["name"], c["type"]) for c in schema] == list(inputs.items())
    assert run_.data.tags["data.rows_without_target"] == "0"


def _blank(value) -> bool:
    return isinstance(value, float) and math.isnan(value)

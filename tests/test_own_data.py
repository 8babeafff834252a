"""Your own data (issue 10): scikit-learn's bundled real tables, versioned with `dvc add`, run
through the real `dvc repro` in a temporary repository.

References: scikit-learn's LogisticRegression on the same standardized split, the table file's
sha256, the MLflow store read back, and evaluate's own predictions for pipeline.predict.
"""

from __future__ import annotations

import csv
import hashlib
import json

import mlflow
import numpy as np
import pytest
from helpers import ROOT, clean_env, commit_all, run, write_params
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from pipeline.data.splits import load_split

pytestmark = pytest.mark.e2e

# The params docs/own-data.md shows for a real table: adam, 30 epochs, batches of 16.
TABLE_TRAINING = {
    "seed": 7,
    "data": {"kind": "table", "test_size": 0.2, "val_size": 0.1},
    "train": {"epochs": 30, "batch_size": 16, "lr": 0.01, "optimizer": "adam", "device": "cpu"},
}


def write_table(repo, name: str, suffix: str, named_classes: bool) -> tuple[str, str]:
    """scikit-learn's bundled table as data/raw/<name><suffix>; its label column is 'label'."""
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "label"})
    if named_classes:
        frame["label"] = np.asarray(bunch.target_names)[frame["label"]]
    path = f"data/raw/{name}{suffix}"
    if suffix == ".csv":
        frame.to_csv(repo / path, index=False)
    else:
        frame.to_parquet(repo / path)
    return path, "label"


def add_and_configure(repo, path: str, target: str, **data) -> None:
    run(["dvc", "add", path], repo)
    overrides = {**TABLE_TRAINING, "data": {**TABLE_TRAINING["data"], "path": path}}
    overrides["data"].update(target=target, **data)
    write_params(repo / "params.yaml", overrides)
    commit_all(repo, f"train on {path}")


def stages_run(output: str) -> set[str]:
    names = ("validate", "generate", "train", "evaluate", "export")
    return {name for name in names if f"Running stage '{name}'" in output}


def logistic_regression_accuracy(repo) -> float:
    train, test = (load_split(repo / f"data/{name}.npz") for name in ("train", "test"))
    scaler = StandardScaler().fit(train.features)
    model = LogisticRegression(max_iter=5000).fit(scaler.transform(train.features), train.labels)
    return model.score(scaler.transform(test.features), test.labels)


def assert_as_good_as_logistic_regression(repo, classes) -> dict:
    report = json.loads((repo / "metrics/eval.json").read_text())
    assert report["test_accuracy"] >= logistic_regression_accuracy(repo) - 0.02
    assert list(report["per_class"]) == [str(c) for c in classes]
    return report


@pytest.mark.parametrize(
    ("name", "suffix", "named_classes"),
    [("breast_cancer", ".parquet", True), ("digits", ".csv", False)],
)
def test_a_real_table_trains_as_well_as_logistic_regression(project, name, suffix, named_classes):
    path, target = write_table(project, name, suffix, named_classes)
    add_and_configure(project, path, target)
    run(["dvc", "repro"], project, env=clean_env(PIPELINE_TRACKING="0"))
    arch = json.loads((project / "models/model.json").read_text())
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    expected = sorted(bunch.target_names) if named_classes else list(range(10))
    assert arch["classes"] == expected
    assert arch["features"] == list(bunch.feature_names)
    assert_as_good_as_logistic_regression(project, expected)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def latest_run(repo):
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    run_id = json.loads((repo / "metrics/train.json").read_text())["mlflow_run_id"]
    return client.get_run(run_id)


def predict_by_name(repo) -> list[str]:
    """The test rows in another column order with one extra column, through pipeline.predict."""
    test = load_split(repo / "data/test.npz")
    # The rows as the table had them (the split holds them encoded: standardized).
    frame = test.encoding.decode(test.features).iloc[:, ::-1]
    frame.insert(1, "note", "new")
    frame.to_csv(repo / "new_wines.csv", index=False)
    done = run(
        [
            "python",
            "-m",
            "pipeline.predict",
            "--model",
            "models/model.pth",
            "--input",
            "new_wines.csv",
        ],
        repo,
        env=clean_env(PYTHONPATH=str(ROOT)),
    )
    assert done.stderr.endswith("columns ignored (not features of the model): note\n")
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert list(rows[0]) == ["prob_barbera", "prob_barolo", "prob_grignolino", "class"]
    return [row["class"] for row in rows]


def test_wine_by_name_with_lineage_through_dvc_and_mlflow(project):
    wine = project / "data/raw/wine.csv"
    frame = datasets.load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.to_csv(wine, index=False)
    add_and_configure(project, "data/raw/wine.csv", "cultivar")
    assert stages_run(run(["dvc", "repro"], project).stdout) == {
        "validate",
        "generate",
        "train",
        "evaluate",
        "export",
    }
    classes = ["barbera", "barolo", "grignolino"]
    assert_as_good_as_logistic_regression(project, classes)
    confusion = list(csv.DictReader((project / "plots/confusion.csv").read_text().splitlines()))
    assert {row["actual"] for row in confusion} == set(classes)
    assert predict_by_name(project) == [row["predicted"] for row in confusion]

    first = latest_run(project)
    assert first.data.tags["data.sha256"] == sha256(wine)
    inputs = {d.dataset.name: d for d in first.inputs.dataset_inputs}
    assert sorted(inputs) == ["wine/test", "wine/train", "wine/val"]
    contexts = {name: [t.value for t in d.tags] for name, d in inputs.items()}
    assert contexts == {
        "wine/train": ["training"],
        "wine/val": ["validation"],
        "wine/test": ["testing"],
    }
    sizes = {name: json.loads(d.dataset.profile)["num_rows"] for name, d in inputs.items()}
    assert sizes == {"wine/train": 127, "wine/val": 15, "wine/test": 36}
    assert json.loads(inputs["wine/train"].dataset.source) == {"uri": "data/raw/wine.csv"}

    # Nothing changed: nothing runs.
    assert stages_run(run(["dvc", "repro"], project).stdout) == set()

    # A new version of the table (`dvc add` again) reruns generate and everything after it.
    frame.iloc[10:].to_csv(wine, index=False)
    run(["dvc", "add", "data/raw/wine.csv"], project)
    output = run(["dvc", "repro"], project).stdout
    assert stages_run(output) == {"generate", "train", "evaluate", "export"}
    second = latest_run(project)
    assert second.info.run_id != first.info.run_id
    assert second.data.tags["data.sha256"] == sha256(wine) != first.data.tags["data.sha256"]

    # Another choice of feature columns reruns generate too.
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("features: []", "features: [alcohol, proline]"))
    output = run(["dvc", "repro"], project, env=clean_env(PIPELINE_TRACKING="0")).stdout
    assert {"generate", "train"} <= stages_run(output)
    assert json.loads((project / "models/model.json").read_text())["features"] == [
        "alcohol",
        "proline",
    ]

    # A broken version stops `dvc repro` at generate with one line naming the cell.
    broken = frame.astype({"alcohol": object})
    broken.loc[3, "alcohol"] = "n/a?"
    broken.to_csv(wine, index=False)
    run(["dvc", "add", "data/raw/wine.csv"], project)
    done = run(["dvc", "repro"], project, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    ours = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert ours == [
        "error: data/raw/wine.csv: column 'alcohol' is not numeric: row 4 (line 5) holds 'n/a?'; "
        "expected numbers in every cell of a number column (blank for a missing one), or text "
        "throughout"
    ]
    assert "Running stage 'train'" not in done.stdout

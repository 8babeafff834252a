"""The real `dvc repro` in a temporary git repository, read back from MLflow and the files."""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from helpers import (
    NOTEBOOK_LOSSES,
    NOTEBOOK_PARAMS,
    NOTEBOOK_PROBABILITIES,
    SMALL_PARAMS,
    commit_all,
    run,
    write_params,
)

from pipeline.config.params import load_params
from pipeline.config.rules import split_sizes
from pipeline.data.splits import load_split
from pipeline.data.synthetic import TOY_TRAIN
from pipeline.model import checkpoint
from pipeline.model.network import Architecture, build_model

pytestmark = pytest.mark.e2e


def repro(repo) -> str:
    done = run(["dvc", "repro"], repo)
    # MLflow's schema hint about integer columns is nothing a user can act on.
    assert "Inferred schema contains integer column" not in done.stdout + done.stderr
    return done.stdout


def store(repo) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")


def all_runs(repo):
    client = store(repo)
    experiment = client.get_experiment_by_name("mlp-pipeline")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def stages_run(output: str) -> set[str]:
    names = ("validate", "generate", "train", "evaluate", "export")
    return {name for name in names if f"Running stage '{name}'" in output}


def test_notebook_parity_through_dvc_and_mlflow(project):
    write_params(project / "params.yaml", NOTEBOOK_PARAMS)
    commit_all(project, "notebook params")
    output = repro(project)
    assert stages_run(output) == {"validate", "generate", "train", "evaluate", "export"}

    run_id = json.loads((project / "metrics/train.json").read_text())["mlflow_run_id"]
    [only_run] = all_runs(project)
    assert only_run.info.run_id == run_id
    assert only_run.info.status == "FINISHED"

    client = store(project)
    history = sorted(client.get_metric_history(run_id, "train_loss"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(6))
    assert [round(m.value, 2) for m in history] == pytest.approx(NOTEBOOK_LOSSES)
    assert len(client.get_metric_history(run_id, "epoch_loss")) == 3
    assert only_run.data.metrics["train_accuracy"] == 1.0
    assert only_run.data.metrics["test_accuracy"] == 1.0
    assert only_run.data.params["train.lr"] == "0.5"
    assert only_run.data.params["data.kind"] == "toy"
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert only_run.data.tags["mlflow.source.git.commit"] == head
    assert only_run.data.tags["git.dirty"] == "false"
    assert len(only_run.data.tags["data.sha256"]) == 64
    # Named after what it is, its data told apart, its Source the stage's command and commit.
    assert only_run.info.run_name == f"toy@{head[:7]}"
    assert only_run.data.tags["data.name"] == "toy"
    train_cmd = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["train"]["cmd"]
    assert only_run.data.tags["mlflow.source.name"] == " ".join(train_cmd.split())

    artifacts = {a.path for d in ("state_dict", "plots") for a in client.list_artifacts(run_id, d)}
    assert artifacts == {
        "state_dict/model.pth",
        "state_dict/model.json",
        "plots/loss.png",
        "plots/confusion.png",
    }
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    answer = pyfunc.predict(pd.DataFrame(TOY_TRAIN[0], columns=["x0", "x1"]))
    assert list(answer.columns) == ["prob_0", "prob_1", "class"]
    assert answer["class"].tolist() == TOY_TRAIN[1]
    assert answer[["prob_0", "prob_1"]].round(4).to_numpy().tolist() == NOTEBOOK_PROBABILITIES
    assert pyfunc.metadata.signature.inputs.input_names() == ["x0", "x1"]
    outputs = pyfunc.metadata.signature.outputs.to_dict()
    assert [(o["name"], o["type"]) for o in outputs] == [
        ("prob_0", "double"),
        ("prob_1", "double"),
        ("class", "long"),
    ]
    assert pyfunc.metadata.load_input_example(
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model")
    ).shape == (2, 2)  # the toy set's 2 test points

    # Generated data names its features x0, x1, ... and its classes 0, 1, ...
    (project / "points.csv").write_text("x0,x1\n" + "".join(f"{a},{b}\n" for a, b in TOY_TRAIN[0]))
    printed = run(
        [
            "python",
            "-m",
            "pipeline.predict",
            "--model",
            "models/model.pth",
            "--input",
            "points.csv",
        ],
        project,
    ).stdout.splitlines()
    assert printed[0] == "prob_0,prob_1,class"
    probabilities = [[float(c) for c in line.split(",")[:2]] for line in printed[1:]]
    assert probabilities == NOTEBOOK_PROBABILITIES

    state = torch.load(project / "models/model.pth", weights_only=True)
    arch = Architecture.from_dict(json.loads((project / "models/model.json").read_text()))
    build_model(arch).load_state_dict(state)

    again = repro(project)
    assert stages_run(again) == set()
    assert len(all_runs(project)) == 1


def test_stages_rerun_exactly_what_a_change_affects(project):
    write_params(project / "params.yaml", SMALL_PARAMS)
    commit_all(project, "small params")
    assert stages_run(repro(project)) == {"validate", "generate", "train", "evaluate", "export"}
    check_outputs_against_references(project)

    write_params(project / "params.yaml", {**SMALL_PARAMS, "train": {"lr": 0.2}})
    assert stages_run(repro(project)) == {"validate", "train", "evaluate", "export"}
    assert len(all_runs(project)) == 2

    write_params(project / "params.yaml", {**SMALL_PARAMS, "data": {"n_samples": 700}})
    assert stages_run(repro(project)) == {"validate", "generate", "train", "evaluate", "export"}
    runs = all_runs(project)
    assert len(runs) == 3
    assert {r.info.status for r in runs} == {"FINISHED"}
    check_outputs_against_references(project)

    shown = run(["dvc", "plots", "show", "--json"], project).stdout
    assert "plots/loss.csv" in shown and "plots/confusion.csv" in shown


def check_outputs_against_references(repo) -> None:
    params = load_params(repo / "params.yaml")
    summary = json.loads((repo / "metrics/train.json").read_text())
    sizes = split_sizes(params.data)
    batches = sizes["train"] // params.train.batch_size  # drop_last
    history = store(repo).get_metric_history(summary["mlflow_run_id"], "train_loss")
    assert len(history) == params.train.epochs * batches == summary["steps"]
    assert sorted(m.step for m in history) == list(range(summary["steps"]))
    assert len(store(repo).get_metric_history(summary["mlflow_run_id"], "val_accuracy")) == (
        params.train.epochs
    )
    assert 0 <= summary["val_accuracy"] <= 1

    model, _ = checkpoint.load(repo / "models/model.pth")
    test = load_split(repo / "data/test.npz")
    with torch.no_grad():
        predicted = model(torch.from_numpy(test.features)).argmax(dim=1).numpy()
    report = json.loads((repo / "metrics/eval.json").read_text())
    assert math.isclose(report["test_accuracy"], float((predicted == test.labels).mean()))
    for label, figures in report["per_class"].items():
        truth = test.labels == int(label)
        assert figures["support"] == int(truth.sum())
        assert math.isclose(figures["recall"], float((predicted[truth] == int(label)).mean()))
    confusion = (repo / "plots/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == len(test) + 1

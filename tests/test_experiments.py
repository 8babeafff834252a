"""DVC experiments and their MLflow runs, linked both ways: real `dvc exp run`, real queues.

Each test works in a temporary git repository (fixture `project`) and reads the runs back from
the project's own store (mlflow.db beside dvc.yaml) and the experiments from `dvc exp show`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from helpers import SMALL_PARAMS, clean_env, commit_all, run, write_params
from sweep_helpers import RATES, TRAIN_SEEDS

from pipeline.config.params import load_params
from pipeline.config.rules import split_sizes
from pipeline.process.files import sha256_of
from pipeline.tracking.store.access import store_client

pytestmark = pytest.mark.e2e

EXPERIMENT = "mlp-pipeline"


def small_params(**train) -> dict:
    params = copy.deepcopy(SMALL_PARAMS)
    params["train"].update(train)
    return params


def store(repo: Path) -> mlflow.MlflowClient:
    # Through the pipeline's own creation lock: a poller that opens the store while a stage
    # creates it would otherwise run MLflow's migrations alongside the stage's (both fail).
    return store_client(f"sqlite:///{repo / 'mlflow.db'}")


def all_runs(repo: Path) -> list:
    client = store(repo)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def exp_show(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json` as {experiment name: {"params": ..., "metrics": {path: data}}}."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            data = experiment["revs"][0].get("data") or {}
            found[experiment["name"]] = {
                "params": data["params"]["params.yaml"]["data"],
                "metrics": {path: entry["data"] for path, entry in data["metrics"].items()},
            }
    return found


def head(repo: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def expected_steps(repo: Path) -> int:
    params = load_params(repo / "params.yaml")
    batches = split_sizes(params.data)["train"] // params.train.batch_size  # drop_last
    return params.train.epochs * batches


def loss_steps(client: mlflow.MlflowClient, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "train_loss"))


def logged_models(client: mlflow.MlflowClient, run) -> list:
    query = f"source_run_id = '{run.info.run_id}'"
    return client.search_logged_models([run.info.experiment_id], filter_string=query)


def test_a_queued_sweep_ends_as_finished_runs_in_the_original_store(queued_sweep):
    """The suite's shared sweep (sweep_helpers.py): 3 rates x 2 training seeds, 2 queue workers."""
    project, names = queued_sweep.repo, queued_sweep.names
    assert len(names) == len(RATES) * len(TRAIN_SEEDS)
    failed = [name for name, status in queued_sweep.statuses.items() if status != "Success"]
    assert not failed, f"{queued_sweep.statuses}\n" + "\n".join(
        log[-3000:] for log in queued_sweep.failure_logs
    )

    runs = {r.info.run_name: r for r in all_runs(project)}
    assert set(runs) == set(names)
    shown = exp_show(project)
    client = store(project)
    baseline = head(project)
    steps = expected_steps(project)
    for name, mlflow_run in runs.items():
        run_id = mlflow_run.info.run_id
        assert mlflow_run.info.status == "FINISHED"
        # MLflow -> DVC: the run names the experiment; DVC -> MLflow: the experiment names the run
        assert mlflow_run.data.tags["dvc.exp_name"] == name
        assert mlflow_run.data.tags["dvc.baseline_rev"] == baseline
        assert mlflow_run.data.tags["mlflow.source.git.commit"] == baseline
        assert mlflow_run.data.tags["git.dirty"] == "true"  # the queued params on the commit
        assert shown[name]["metrics"]["metrics/train.json"]["mlflow_run_id"] == run_id
        lr = shown[name]["params"]["train"]["lr"]
        assert float(mlflow_run.data.params["train.lr"]) == lr
        assert loss_steps(client, run_id) == list(range(steps))
        assert len(client.get_metric_history(run_id, "val_accuracy")) == 2
        val_accuracy = shown[name]["metrics"]["metrics/train.json"]["val_accuracy"]
        assert mlflow_run.data.metrics["val_accuracy"] == pytest.approx(val_accuracy)
        test_accuracy = shown[name]["metrics"]["metrics/eval.json"]["test_accuracy"]
        assert mlflow_run.data.metrics["test_accuracy"] == pytest.approx(test_accuracy)
        # DVC_ROOT: the artifacts are in the original repository, not in the queue's copy.
        artifacts = project / "mlartifacts" / mlflow_run.info.run_id / "artifacts"
        assert mlflow_run.info.artifact_uri == artifacts.as_uri()
        assert (artifacts / "state_dict" / "model.pth").is_file()
    swept = sorted(
        (float(r.data.params["train.lr"]), int(r.data.params["train.seed"])) for r in runs.values()
    )
    assert swept == sorted((float(lr), seed) for lr in RATES for seed in TRAIN_SEEDS)
    assert [p.relative_to(project) for p in project.rglob("mlflow.db")] == [Path("mlflow.db")]

    # compare's choice: the best seed of the configuration (learning rate) best in the mean.
    val = {name: shown[name]["metrics"]["metrics/train.json"] for name in names}
    by_rate = {}
    for name in names:
        by_rate.setdefault(shown[name]["params"]["train"]["lr"], []).append(name)
    best_rate = min(
        by_rate,
        key=lambda lr: (
            -statistics.mean(val[n]["val_accuracy"] for n in by_rate[lr]),
            statistics.mean(val[n]["val_loss"] for n in by_rate[lr]),
        ),
    )
    chosen = min(by_rate[best_rate], key=lambda n: (-val[n]["val_accuracy"], val[n]["val_loss"], n))
    printed = run([sys.executable, "-m", "pipeline.compare"], project).stdout
    assert f"chosen on validation accuracy: {chosen}" in printed
    test_accuracy = shown[chosen]["metrics"]["metrics/eval.json"]["test_accuracy"]
    assert f"test_accuracy {test_accuracy:.4f}" in printed
    experiment_id = runs[chosen].info.experiment_id
    assert f"#/experiments/{experiment_id}/runs/{runs[chosen].info.run_id}" in printed


def test_an_experiment_names_its_run_and_a_repeat_reuses_it(project):
    write_params(project / "params.yaml", small_params(epochs=1))
    commit_all(project, "small params")
    baseline = head(project)
    run(["dvc", "exp", "run", "-n", "lr-first", "-S", "train.lr=0.1"], project)
    [first] = all_runs(project)
    assert first.info.run_name == "lr-first"
    assert first.info.status == "FINISHED"
    assert first.data.params["train.lr"] == "0.1"
    tags = first.data.tags
    assert tags["dvc.exp_name"] == "lr-first"
    assert tags["dvc.baseline_rev"] == baseline
    assert tags["mlflow.source.git.commit"] == baseline
    assert tags["git.dirty"] == "true"  # `-S` changed params.yaml on top of the commit
    assert tags["data.sha256"] == sha256_of([project / "data/train.npz", project / "data/val.npz"])
    assert exp_show(project)["lr-first"]["metrics"]["metrics/train.json"]["mlflow_run_id"] == (
        first.info.run_id
    )

    run(["dvc", "exp", "run", "-n", "lr-second", "-S", "train.lr=0.2"], project)
    assert len(all_runs(project)) == 2

    # Params seen before: DVC restores train, evaluate and export from its run cache.
    again = run(["dvc", "exp", "run", "-n", "lr-first-again", "-S", "train.lr=0.1"], project)
    assert "Stage 'train' is cached" in again.stdout
    assert "Running stage 'train'" not in again.stdout
    assert len(all_runs(project)) == 2
    summary = json.loads((project / "metrics/train.json").read_text())
    assert summary["mlflow_run_id"] == first.info.run_id
    shown = exp_show(project)
    assert shown["lr-first-again"]["metrics"]["metrics/train.json"]["mlflow_run_id"] == (
        first.info.run_id
    )

    # Only export reruns (its params changed), into the restored training's run: it registers
    # the model that run already holds instead of logging a second one.
    overrides = ["-S", "train.lr=0.1", "-S", "export.register=true"]
    again = run(["dvc", "exp", "run", "-n", "registered", *overrides], project)
    assert "Running stage 'export'" in again.stdout
    assert "Running stage 'train'" not in again.stdout
    assert len(all_runs(project)) == 2
    client = store(project)
    first = client.get_run(first.info.run_id)
    assert first.info.status == "FINISHED"
    assert loss_steps(client, first.info.run_id) == list(range(expected_steps(project)))
    [model] = logged_models(client, first)
    [version] = client.search_model_versions("name = 'mlp-pipeline'")
    assert version.run_id == first.info.run_id
    assert model.model_id in version.source


def test_a_killed_training_is_marked_killed_when_the_pipeline_starts_again(project):
    write_params(project / "params.yaml", small_params(epochs=100_000))
    commit_all(project, "a training that outlives the test")
    run(["dvc", "repro", "generate"], project)
    train = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.stages.train",
            "--params",
            "params.yaml",
            "--data",
            "data",
        ],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        killed = wait_for_training(project)
    finally:
        os.kill(train.pid, signal.SIGKILL)
        train.wait()
    assert store(project).get_run(killed).info.status == "RUNNING"  # nobody could end it

    write_params(project / "params.yaml", small_params(epochs=1))
    output = run(["dvc", "repro"], project)
    assert f"marked run {killed} KILLED" in output.stderr
    statuses = {r.info.run_id: r.info.status for r in all_runs(project)}
    new = json.loads((project / "metrics/train.json").read_text())["mlflow_run_id"]
    assert statuses == {killed: "KILLED", new: "FINISHED"}


def wait_for_training(repo: Path) -> str:
    """The id of the first run that is RUNNING with a metric logged: training is under way."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the store may still be being created
            for candidate in all_runs(repo):
                if candidate.info.status == "RUNNING" and "epoch_loss" in candidate.data.metrics:
                    return candidate.info.run_id
        time.sleep(0.5)
    raise AssertionError("no training run logged an epoch within 120 s")

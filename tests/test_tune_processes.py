"""Studies as users run them, in processes of their own: Ctrl-C and SIGTERM, two workers on one
study in a real PostgreSQL, and the best trial trained again through a real `dvc exp run`."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import sqlalchemy
from helpers import ROOT, SMALL_PARAMS, clean_env, commit_all, run, write_params
from optuna.trial import TrialState
from tune_helpers import load_study, make_workspace, study_runs, tune_args

from pipeline.process.lifeline import popen_tied
from scripts import team_postgres, team_server

pytestmark = pytest.mark.e2e
TUNE = [sys.executable, "-m", "pipeline.tune"]


@pytest.fixture
def started():
    """Start processes tied to this one (they end with it, even on SIGKILL); teardown kills
    what is left of each tree."""
    processes: list[subprocess.Popen] = []

    def start(cmd: list[str], cwd: Path, env: dict) -> subprocess.Popen:
        process = popen_tied(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def tracked_env(tmp_path: Path) -> tuple[dict, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = clean_env(MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_NAME="tests", PYTHONPATH=str(ROOT))
    return env, uri


def wait_until(condition, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def trial_is_training(workspace: Path) -> bool:
    """Trial 0 has validated its first epoch and is still running."""
    if not (workspace / "optuna.db").exists():
        return False
    try:
        trials = load_study(workspace).trials
    except KeyError:  # the study is not created yet
        return False
    except sqlalchemy.exc.DBAPIError:  # this poll raced the worker creating the storage's tables
        return False
    return bool(trials) and trials[0].state == TrialState.RUNNING and trials[0].intermediate_values


@pytest.mark.parametrize(
    "signum, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_a_signal_ends_the_trial_and_the_study_run_and_a_rerun_resumes(
    tmp_path, started, signum, code, name
):
    workspace = make_workspace(tmp_path / "w", epochs=500)  # a trial of many seconds
    env, uri = tracked_env(tmp_path)
    study = started([*TUNE, *tune_args(workspace, "--trials", "5")], workspace, env)
    wait_until(lambda: trial_is_training(workspace) or study.poll() is not None)
    study.send_signal(signum)
    _, err = study.communicate(timeout=120)

    assert study.returncode == code, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == f"error: study interrupted by {name}; rerun to resume it"
    assert [t.state for t in load_study(workspace).trials] == [TrialState.FAIL]
    (parent,), (child,) = study_runs(uri)
    assert parent.info.status == "KILLED"
    assert (child.info.status, child.data.tags["trial.state"]) == ("KILLED", "FAIL")

    write_params(workspace / "params.yaml", {**SMALL_PARAMS})  # back to 2 epochs
    run([*TUNE, *tune_args(workspace, "--trials", "1")], workspace, env=env)
    resumed = load_study(workspace).trials
    assert [(t.number, t.state) for t in resumed] == [
        (0, TrialState.FAIL),
        (1, TrialState.COMPLETE),
    ]


@pytest.fixture(scope="module")
def postgres_study_storage():
    """A real PostgreSQL (the team server's own cluster) with an empty database for Optuna."""
    if team_server.postgres_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); CI installs it")
    state_dir = Path(tempfile.mkdtemp(prefix="mlp-tune-pg-"))
    if os.geteuid() == 0:
        state_dir.chmod(0o711)  # the postgres account must reach its cluster inside
    try:
        with team_server.local_postgres(state_dir) as server:
            team_postgres.ensure_database(server, "optuna")
            yield server.uri("optuna")
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def test_two_workers_share_one_study_on_postgresql(tmp_path, started, postgres_study_storage):
    workspace = make_workspace(tmp_path / "w")
    env, uri = tracked_env(tmp_path)
    args = tune_args(workspace, "--trials", "3", "--storage", postgres_study_storage)
    workers = [started([*TUNE, *args, "--study", "shared"], workspace, env) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err

    study = optuna.load_study(storage=postgres_study_storage, study_name="shared")
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    parents, children = study_runs(uri)
    assert len(parents) == 2
    assert sorted(int(c.data.tags["trial.number"]) for c in children) == list(range(6))
    assert {c.info.run_id for c in children} == {
        t.user_attrs["mlflow_run_id"] for t in study.trials
    }
    per_parent = [
        sum(c.data.tags["mlflow.parentRunId"] == p.info.run_id for c in children) for p in parents
    ]
    assert per_parent == [3, 3]


def test_apply_trains_the_best_trial_through_dvc_and_links_its_run(project):
    """The committed tune.yaml, the default storage, then --apply: a real `dvc exp run`."""
    write_params(project / "params.yaml", SMALL_PARAMS)
    commit_all(project, "small params")
    run(["dvc", "repro", "generate"], project)
    run([*TUNE, "--trials", "3"], project)
    printed = run([*TUNE, "--best"], project).stdout.splitlines()[-1]
    run([*TUNE, "--apply"], project)

    study = optuna.load_study(
        storage=f"sqlite:///{project / 'optuna.db'}", study_name="mlp-pipeline"
    )
    best = max(
        (t for t in study.trials if t.state == TrialState.COMPLETE),
        key=lambda t: (t.value, -t.user_attrs["val_loss"]),
    )
    trained = json.loads((project / "metrics" / "train.json").read_text())
    assert abs(trained["val_accuracy"] - best.value) <= 1e-6
    assert "test_accuracy" in json.loads((project / "metrics" / "eval.json").read_text())

    words = shlex.split(printed)
    link = dict(word.split("=", 1) for word in words[:3])
    assert words[3:8] == ["dvc", "exp", "run", "-n", f"mlp-pipeline-trial-{best.number}"]
    tags = (
        mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
        .get_run(trained["mlflow_run_id"])
        .data.tags
    )
    assert tags["dvc.exp_name"] == f"mlp-pipeline-trial-{best.number}"
    assert tags["study.parent_run_id"] == best.user_attrs["mlflow_parent_run_id"]
    assert tags["study.parent_run_id"] == link["PIPELINE_STUDY_RUN"]
    assert tags["study.trial"] == str(best.number)
    assert tags["study.trial_run_id"] == best.user_attrs["mlflow_run_id"]

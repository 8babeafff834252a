"""A small workspace for studies: SMALL_PARAMS' splits made by the real generate stage, a search
space over them, and readers of what a study stored (Optuna's storage, the MLflow store)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
from helpers import SMALL_PARAMS, write_params

from pipeline.stages import generate

# 360 training rows (SMALL_PARAMS), so every batch size here fits with drop_last.
SPACE = """\
study: {name: t, seed: 3, pruner_startup_trials: %(startup)d, pruner_warmup_epochs: 0}
space:
  train.lr: {low: 0.001, high: 1.0, log: true}
  train.batch_size: {choices: [8, 16, 32]}
  train.optimizer: {choices: [sgd, adam]}
  model.hidden: {choices: [[8], [16, 8]]}
"""


def make_workspace(directory: Path, epochs: int = 2, startup_trials: int = 5) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_params(directory / "params.yaml", {**SMALL_PARAMS, "train": _train(epochs)})
    (directory / "tune.yaml").write_text(SPACE % {"startup": startup_trials})
    assert (
        generate.main(
            ["--params", str(directory / "params.yaml"), "--out", str(directory / "data")]
        )
        == 0
    )
    return directory


def _train(epochs: int) -> dict:
    return {**SMALL_PARAMS["train"], "epochs": epochs}


def tune_args(workspace: Path, *args: str) -> list[str]:
    return [
        "--params", str(workspace / "params.yaml"),
        "--data", str(workspace / "data"),
        "--space", str(workspace / "tune.yaml"),
        "--storage", storage(workspace),
        *args,
    ]  # fmt: skip


def storage(workspace: Path) -> str:
    return f"sqlite:///{workspace / 'optuna.db'}"


def load_study(workspace: Path, name: str = "t") -> optuna.Study:
    return optuna.load_study(storage=storage(workspace), study_name=name)


def study_runs(tracking_uri: str, experiment: str = "tests") -> tuple[list, list]:
    """(parent runs, trial runs) of the experiment, read back from the store."""
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, children

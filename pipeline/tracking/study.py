"""A study in MLflow: one parent run per invocation of `pipeline.tune`, one nested child run per
trial, and the tags that link a DVC experiment's run back to the trial it reproduces.

A study logs a few figures per epoch, so it writes to the store directly (no spool or sender).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pipeline.tracking.destination import (
    configuration_tags,
    destination,
    git_tags,
    repo_root,
    tracking_enabled,
)
from pipeline.tracking.store.access import (
    experiment_id,
    explains_refusal,
    open_client,
    retry_locked,
)
from pipeline.tracking.store.stale import process_tags

# Set on `dvc exp run` by `pipeline.tune --best/--apply`; the train stage turns them into tags.
LINK_VARIABLES = {
    "PIPELINE_STUDY_RUN": "study.parent_run_id",
    "PIPELINE_TRIAL": "study.trial",
    "PIPELINE_TRIAL_RUN": "study.trial_run_id",
}
# A trial's Optuna state as MLflow run status; a pruned trial ran as planned, only shorter.
STATUS_OF_STATE = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}


def study_link_tags() -> dict[str, str]:
    return {tag: os.environ[var] for var, tag in LINK_VARIABLES.items() if os.environ.get(var)}


class NullTrialRun:
    run_id: str | None = None

    def log_validation(self, epoch: int, val_loss: float, val_accuracy: float) -> None:
        pass

    def end(self, state: str, interrupted: bool = False, note: str = "") -> None:
        pass


class NullStudyRun:
    """Tracking off: the study runs and is stored by Optuna, nothing goes to MLflow."""

    run_id: str | None = None

    def trial(self, number: int, params: dict[str, Any]) -> NullTrialRun:
        return NullTrialRun()

    def log_best(self, value: float, step: int) -> None:
        pass

    def log_files(self, paths: list[Path], artifact_path: str) -> None:
        pass

    def end(self, status: str) -> None:
        pass


class TrialRun(NullTrialRun):
    """One trial: a child of the study's run, so the UI groups the trials under it."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id

    def log_validation(self, epoch: int, val_loss: float, val_accuracy: float) -> None:
        from mlflow.entities import Metric

        at = _now_ms()
        metrics = [
            Metric("val_loss", val_loss, at, epoch),
            Metric("val_accuracy", val_accuracy, at, epoch),
        ]
        retry_locked(self.client.log_batch, self.run_id, metrics=metrics)

    def end(self, state: str, interrupted: bool = False, note: str = "") -> None:
        """state: Optuna's COMPLETE, PRUNED or FAIL; an interrupted trial's run ends KILLED."""
        from mlflow.entities import RunTag

        tags = [RunTag("trial.state", state)]
        if note:
            tags.append(RunTag("mlflow.note.content", note))
        retry_locked(self.client.log_batch, self.run_id, tags=tags)
        status = "KILLED" if interrupted else STATUS_OF_STATE[state]
        retry_locked(self.client.set_terminated, self.run_id, status=status)


class StudyRun(NullStudyRun):
    """The parent run of one invocation: the study's settings, best value, pictures."""

    def __init__(self, client, run_id: str, experiment: str, study_name: str, tags: dict):
        self.client, self.run_id, self.experiment = client, run_id, experiment
        self.study_name, self.tags = study_name, tags

    def trial(self, number: int, params: dict[str, Any]) -> TrialRun:
        from mlflow.entities import Param

        tags = {
            **self.tags,
            **configuration_tags(params),
            "mlflow.parentRunId": self.run_id,
            "trial.number": str(number),
            "trial.state": "RUNNING",
        }
        run = retry_locked(
            self.client.create_run,
            self.experiment,
            run_name=f"{self.study_name}-trial-{number}",
            tags=tags,
        )
        items = [Param(key, str(value)) for key, value in params.items()]
        retry_locked(self.client.log_batch, run.info.run_id, params=items)
        return TrialRun(self.client, run.info.run_id)

    def log_best(self, value: float, step: int) -> None:
        retry_locked(self.client.log_metric, self.run_id, "best_val_accuracy", value, step=step)

    def log_files(self, paths: list[Path], artifact_path: str) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: str) -> None:
        retry_locked(self.client.set_terminated, self.run_id, status=status)


@explains_refusal
def start_study_run(study_name: str, settings: dict[str, Any]) -> NullStudyRun:
    """The parent run of this invocation, named after the study, holding its settings."""
    if not tracking_enabled():
        return NullStudyRun()
    dest = destination(repo_root())
    client = open_client(dest)
    experiment = experiment_id(client, dest)
    tags = {**git_tags(Path.cwd()), **process_tags(), "study.name": study_name}
    run = retry_locked(client.create_run, experiment, run_name=study_name, tags=tags)
    from mlflow.entities import Param

    items = [Param(key, str(value)) for key, value in settings.items()]
    retry_locked(client.log_batch, run.info.run_id, params=items)
    return StudyRun(client, run.info.run_id, experiment, study_name, tags)


def _now_ms() -> int:
    return int(time.time() * 1000)

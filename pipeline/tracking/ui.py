"""Links into the MLflow UI that land on the runs.

MLflow 3's UI opens an experiment on its GenAI overview (traces) unless the address asks for the
Model training view: `workflowType=machine_learning` (the UI's own query parameter, which it also
remembers for the next visit). `compareRunsMode=CHART` opens the runs' charts instead of the
table, where the loss curves are what the reader came for.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_UI = "http://127.0.0.1:5000"
MODEL_TRAINING = "workflowType=machine_learning"


def ui_address() -> str:
    """Where the MLflow UI is: the one place every printed link asks (`make ui`, `make run`,
    pipeline.compare). MLFLOW_UI_URL when set (a UI elsewhere), else this machine on UI_PORT
    (the Makefile's variable, exported to its commands; 5000 by default)."""
    if url := os.environ.get("MLFLOW_UI_URL"):
        return url.rstrip("/")
    return f"http://127.0.0.1:{os.environ.get('UI_PORT') or 5000}"


def runs_page(ui: str, experiment_id: str, charts: bool = False) -> str:
    view = "&compareRunsMode=CHART" if charts else ""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING}{view}"


def run_links(run_id: str, ui: str | None = None) -> list[str]:
    """The run's page and its experiment's runs (charts) in the UI at `ui`; none when the store
    does not know the run."""
    from mlflow.exceptions import MlflowException

    from pipeline.tracking.destination import destination, tracking_enabled
    from pipeline.tracking.store.access import open_client
    from pipeline.tracking.store.check import check_store

    if not tracking_enabled():
        return []
    ui = ui or ui_address()
    dest = destination()
    check_store(dest.tracking_uri)
    try:
        experiment_id = open_client(dest).get_run(run_id).info.experiment_id
    except MlflowException:
        return []
    page = f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING}"
    return [page, runs_page(ui, experiment_id, charts=True)]


def experiment_page(ui: str, tracking_uri: str | None, charts: bool = False) -> str:
    """The runs of the configured experiment; the UI's front page while it does not exist yet.

    Never creates a store: `make ui` prints this before the store has a first run.
    """
    import mlflow

    from pipeline.tracking.destination import destination
    from pipeline.tracking.store.urls import sqlite_path

    dest = destination()
    uri = tracking_uri or dest.tracking_uri
    path = sqlite_path(uri)
    if path is not None and not Path(path).exists():
        return ui
    experiment = mlflow.MlflowClient(uri).get_experiment_by_name(dest.experiment_name)
    return runs_page(ui, experiment.experiment_id, charts) if experiment else ui

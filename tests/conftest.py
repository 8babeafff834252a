"""Fixtures shared by the suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import copy_project
from sweep_helpers import Sweep, shared_sweep


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project in a fresh git repository, as a user's clone would be."""
    return copy_project(tmp_path / "repo")


@pytest.fixture
def table_workspace(tmp_path: Path, monkeypatch) -> Path:
    """An empty working directory with data/raw/ for a table, tracking off."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    (tmp_path / "data/raw").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch) -> str:
    """A real MLflow SQLite store in tmp_path, set the way a user sets it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # set, then delete: monkeypatch then restores "unset" even after mlflow.set_tracking_uri()
    # writes the variable itself.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "PIPELINE_TRACKING", "DVC_ROOT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tests")
    return uri


@pytest.fixture(autouse=True)
def forget_tracking_uri():
    """mlflow.set_tracking_uri() is process-global: no test sees the previous test's store."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)
    if before is not None:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="session")
def queued_sweep(tmp_path_factory, worker_id) -> Sweep:
    """One queued DVC sweep per test session, shared by every xdist worker (sweep_helpers.py)."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker has its own basetemp inside the session's: share the session's.
    return shared_sweep(base if worker_id == "master" else base.parent)

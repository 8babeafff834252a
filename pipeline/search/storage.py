"""Where a study lives: Optuna's RDB storage URL and its default file beside the MLflow store."""

from __future__ import annotations

from pathlib import Path

from pipeline.tracking.destination import repo_root
from pipeline.tracking.store.urls import sqlite_path

# Beside the MLflow store's mlflow.db, git-ignored.
STORAGE_FILE = "optuna.db"


def storage_url(given: str | None) -> str:
    if not given:
        return f"sqlite:///{repo_root() / STORAGE_FILE}"
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; we install psycopg2 (`team` extra).
    if given.startswith("postgresql://"):
        return "postgresql+psycopg2://" + given.removeprefix("postgresql://")
    return given


def missing_sqlite_file(url: str) -> Path | None:
    path = sqlite_path(url)
    return path if path and not path.exists() else None

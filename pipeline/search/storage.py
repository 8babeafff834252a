"""Where a study lives: Optuna's RDB storage URL, its default file, how it is shown."""

from __future__ import annotations

from pathlib import Path

from pipeline.tracking import repo_root

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
    prefix = "sqlite:///"
    path = Path(url.removeprefix(prefix).split("?")[0]) if url.startswith(prefix) else None
    return path if path and not path.exists() else None


def shown(url: str) -> str:
    """The storage URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return url
    user = head.split("//", 1)[-1].split(":", 1)[0]
    return f"{head.split('//', 1)[0]}//{user}:***@{tail}"

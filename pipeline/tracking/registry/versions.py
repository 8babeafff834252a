"""The model registry: one version per training, the aliases champion and previous, downloads.

A version is tagged with what a reader of the registry needs to trace it back: the run, the DVC
experiment, the git commit, and the validation and test accuracy the run recorded.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.tracking.destination import destination
from pipeline.tracking.store.access import open_client, retry_locked

CHAMPION, PREVIOUS = "champion", "previous"
# Version tag -> the run's tag that holds it.
RUN_TAGS = {"dvc.exp_name": "dvc.exp_name", "git.commit": "mlflow.source.git.commit"}
RUN_METRICS = ("val_accuracy", "test_accuracy")
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
URI_FORMS = "models:/<name>@<alias> or models:/<name>/<version>"


def register(client, run_id: str, name: str):
    """The version of `name` holding the run's model: the existing one, or a new one."""
    import mlflow

    from pipeline.process.errors import InputError
    from pipeline.tracking.registry.models import logged_model

    query = f"name = '{name}' AND run_id = '{run_id}'"
    found = retry_locked(client.search_model_versions, query)
    if found:
        version = min(found, key=lambda v: int(v.version))
    else:
        logged = logged_model(client, run_id)
        if logged is None:
            raise InputError(
                f"run {run_id}: holds no logged model 'model' to register; expected a run "
                "whose export stage ran with tracking on (`dvc repro export`)"
            )
        version = mlflow.register_model(logged.model_uri, name)
    for key, value in version_tags(client.get_run(run_id)).items():
        retry_locked(client.set_model_version_tag, name, version.version, key, value)
    return version


def version_tags(run) -> dict[str, str]:
    """The run's id, experiment, commit and accuracies; what the run lacks is left out."""
    tags = {"run_id": run.info.run_id}
    tags |= {tag: run.data.tags[key] for tag, key in RUN_TAGS.items() if key in run.data.tags}
    tags |= {key: str(run.data.metrics[key]) for key in RUN_METRICS if key in run.data.metrics}
    return tags


@dataclass(frozen=True)
class Move:
    alias: str
    version: str
    was: str | None  # the version that held the alias before, None if no version did

    def __str__(self) -> str:
        before = f"was version {self.was}" if self.was else "new"
        return f"@{self.alias} -> version {self.version} ({before})"


def promote(run_id: str, name: str) -> tuple[str, list[Move]]:
    """Make the run's version (registered first if need be) @champion; the previous champion
    becomes @previous. Returns the version and what moved (nothing when it was champion)."""
    client = open_client(destination())
    version = str(register(client, run_id, name).version)
    champion = _version_with_alias(client, name, CHAMPION)
    if champion == version:
        return version, []
    moves = []
    if champion is not None:
        moves.append(Move(PREVIOUS, champion, _version_with_alias(client, name, PREVIOUS)))
        retry_locked(client.set_registered_model_alias, name, PREVIOUS, champion)
    retry_locked(client.set_registered_model_alias, name, CHAMPION, version)
    return version, [Move(CHAMPION, version, champion), *moves]


def _version_with_alias(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(retry_locked(client.get_model_version_by_alias, name, alias).version)
    except MlflowException:
        return None


@contextlib.contextmanager
def downloaded(uri: str) -> Iterator[Path]:
    """The state_dict (model.pth, model.json beside it) of a registry URI, in a scratch folder."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from pipeline.process.errors import InputError
    from pipeline.tracking.registry.served_model import STATE_DICT

    name, alias, number = _parse(uri)
    client = open_client(_existing_store())
    version = _resolve(client, uri, name, alias, number)
    download_uri = retry_locked(client.get_model_version_download_uri, name, version)
    with tempfile.TemporaryDirectory(prefix="mlp-model-") as scratch, _quiet_downloads():
        try:
            for file in (STATE_DICT, str(Path(STATE_DICT).with_suffix(".json"))):
                mlflow.artifacts.download_artifacts(f"{download_uri}/{file}", dst_path=scratch)
        except (MlflowException, OSError):
            raise InputError(
                f"{uri}: version {version} of {name!r} holds no {STATE_DICT} with model.json; "
                "expected a model logged by the export stage of this pipeline"
            ) from None
        yield Path(scratch) / Path(STATE_DICT).name


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No progress bars: predict's output is the CSV, and downloads of two small files."""
    before = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        os.environ.pop(PROGRESS_BAR)
        if before is not None:
            os.environ[PROGRESS_BAR] = before


def _parse(uri: str) -> tuple[str, str | None, str | None]:
    """models:/<name>@<alias> or models:/<name>/<version> -> (name, alias, version)."""
    from pipeline.process.errors import InputError

    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", uri)
    if match is None:
        raise InputError(f"--model {uri}: not a registry URI; expected {URI_FORMS}")
    return match.groups()


def _resolve(client, uri: str, name: str, alias: str | None, version: str | None) -> str:
    """The version number the URI names; an unknown name, alias or version is an InputError."""
    from mlflow.exceptions import MlflowException

    from pipeline.process.errors import InputError

    try:
        retry_locked(client.get_registered_model, name)
    except MlflowException:
        raise InputError(f"{uri}: no registered model named {name!r} in the store") from None
    try:
        if alias:
            return retry_locked(client.get_model_version_by_alias, name, alias).version
        return retry_locked(client.get_model_version, name, version).version
    except MlflowException:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise InputError(f"{uri}: {name!r} has no {what}; expected {URI_FORMS}") from None


def _existing_store():
    """The destination, refused when it is an embedded store that does not exist yet."""
    from pipeline.process.errors import InputError
    from pipeline.tracking.store.urls import sqlite_path

    dest = destination()
    path = sqlite_path(dest.tracking_uri)
    if path is not None and not path.exists():
        raise InputError(f"{path}: no MLflow store there; expected a store holding the registry")
    return dest

"""The model registry for real: versions, their tags, @champion and @previous.

The tests log runs the way the stages do (train opens the run, evaluate and export log into it)
into a real SQLite store. `python -m pipeline.compare --promote` on a real sweep's choice is
tested on the suite's shared sweep (tests/test_compare_stats.py).
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from pipeline import tracking
from pipeline.model import checkpoint
from pipeline.model.network import Architecture, build_model
from pipeline.process.errors import InputError

MODEL = "registry-tests"


def trained_run(tmp_path, val_accuracy: float, test_accuracy: float, register: str | None):
    """A finished run holding the served model of a small MLP and its accuracies; its id."""
    tracker = tracking.start_run({"seed": 1}, {})
    with tracking.run_status(tracker):
        pass
    arch = Architecture(3, (4,), 2)
    state = tmp_path / f"model-{tracker.run_id}.pth"
    checkpoint.save(build_model(arch), arch, state)
    exporter = tracking.resume_run(tracker.run_id)
    with tracking.run_status(exporter):
        exporter.log_metric("val_accuracy", val_accuracy)
        exporter.log_metric("test_accuracy", test_accuracy)
        exporter.log_model(state, np.ones((2, 3), np.float32), register)
    return tracker.run_id


def aliases(client: mlflow.MlflowClient) -> dict[str, str]:
    return {alias: str(v) for alias, v in client.get_registered_model(MODEL).aliases.items()}


def test_a_version_is_tagged_with_its_run_and_registered_once(sqlite_store, tmp_path):
    run_id = trained_run(tmp_path, 0.75, 0.5, register=MODEL)
    client = mlflow.MlflowClient(sqlite_store)
    [version] = client.search_model_versions(f"name = '{MODEL}'")
    run_tags = client.get_run(run_id).data.tags
    assert version.run_id == run_id
    assert version.tags == {
        "run_id": run_id,
        "git.commit": run_tags["mlflow.source.git.commit"],
        "val_accuracy": "0.75",
        "test_accuracy": "0.5",
    }
    # export again into the same run: the same model and version, not a second one
    again = tracking.resume_run(run_id)
    with tracking.run_status(again):
        again.log_model(tmp_path / f"model-{run_id}.pth", np.ones((2, 3), np.float32), MODEL)
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 1
    models = client.search_logged_models([client.get_run(run_id).info.experiment_id])
    assert len(models) == 1


def test_promotion_moves_champion_and_previous(sqlite_store, tmp_path):
    client = mlflow.MlflowClient(sqlite_store)
    first, second = (trained_run(tmp_path, 0.8, 0.7, register=None) for _ in range(2))
    assert client.search_model_versions(f"name = '{MODEL}'") == []

    version, moves = tracking.promote(first, MODEL)  # registers it first
    assert (version, [str(m) for m in moves]) == ("1", ["@champion -> version 1 (new)"])
    assert aliases(client) == {"champion": "1"}
    assert client.get_model_version(MODEL, "1").tags["run_id"] == first

    version, moves = tracking.promote(second, MODEL)
    assert [str(m) for m in moves] == [
        "@champion -> version 2 (was version 1)",
        "@previous -> version 1 (new)",
    ]
    assert aliases(client) == {"champion": "2", "previous": "1"}

    assert tracking.promote(second, MODEL) == ("2", [])  # the champion again: nothing moves
    assert aliases(client) == {"champion": "2", "previous": "1"}

    tracking.promote(first, MODEL)  # back: the versions swap, no third version
    assert aliases(client) == {"champion": "1", "previous": "2"}
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 2


def test_a_run_without_a_model_cannot_be_promoted(sqlite_store):
    tracker = tracking.start_run({}, {})
    with tracking.run_status(tracker):
        pass
    with pytest.raises(InputError, match=f"run {tracker.run_id}: holds no logged model"):
        tracking.promote(tracker.run_id, MODEL)

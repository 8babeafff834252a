"""tracking.py against a real MLflow SQLite store, read back with MlflowClient."""

from __future__ import annotations

import signal

import mlflow
import pytest

from pipeline import tracking


def finished_run(uri, run_id):
    return mlflow.MlflowClient(uri).get_run(run_id)


def test_default_destination_is_the_original_repository(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    dest = tracking.destination()
    assert dest.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert dest.artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()
    assert dest.experiment_name == "mlp-pipeline"


def test_an_explicit_uri_keeps_the_servers_artifact_store(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    assert tracking.destination() == tracking.Destination("http://127.0.0.1:5999", "team", None)


def test_every_batch_loss_arrives_in_step_order(sqlite_store):
    tracker = tracking.start_run({"train.lr": 0.5, "model.hidden": [30, 20]}, {"device": "cpu"})
    losses = [1.0 / (step + 1) for step in range(2500)]
    with tracking.run_status(tracker):
        for step, loss in enumerate(losses):
            tracker.log_batch_loss(step, loss)
    client = mlflow.MlflowClient(sqlite_store)
    history = sorted(client.get_metric_history(tracker.run_id, "train_loss"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(2500))
    assert [m.value for m in history] == pytest.approx(losses)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.5", "model.hidden": "[30, 20]"}
    assert run.data.tags["device"] == "cpu"
    assert client.get_experiment(run.info.experiment_id).name == "tests"


def test_an_exception_ends_the_run_failed_with_losses_flushed(sqlite_store):
    tracker = tracking.start_run({}, {})
    with pytest.raises(ZeroDivisionError), tracking.run_status(tracker):
        tracker.log_batch_loss(0, 0.25)
        1 / 0  # noqa: B018
    run = finished_run(sqlite_store, tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.metrics["train_loss"] == 0.25


def test_sigterm_ends_the_run_killed(sqlite_store):
    tracker = tracking.start_run({}, {})
    with pytest.raises(tracking.Interrupted), tracking.run_status(tracker):
        signal.raise_signal(signal.SIGTERM)
    assert finished_run(sqlite_store, tracker.run_id).info.status == "KILLED"


def test_resume_logs_into_the_same_run(sqlite_store):
    tracker = tracking.start_run({}, {})
    with tracking.run_status(tracker):
        pass
    again = tracking.resume_run(tracker.run_id)
    with tracking.run_status(again):
        again.log_metric("test_accuracy", 0.75)
    run = finished_run(sqlite_store, tracker.run_id)
    assert run.data.metrics["test_accuracy"] == 0.75
    assert run.info.status == "FINISHED"
    experiment = mlflow.MlflowClient(sqlite_store).get_experiment(run.info.experiment_id)
    assert len(mlflow.MlflowClient(sqlite_store).search_runs([experiment.experiment_id])) == 1


def test_tracking_off_touches_no_store(tmp_path, sqlite_store, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    tracker = tracking.start_run({"a": 1}, {})
    assert tracker.run_id is None
    assert not (tmp_path / "mlflow.db").exists()


def test_recorded_run_id_reads_train_metrics(tmp_path):
    path = tmp_path / "train.json"
    path.write_text('{"mlflow_run_id": "abc"}')
    assert tracking.recorded_run_id(path) == "abc"
    path.write_text("{not json")
    with pytest.raises(Exception, match="train.json: not JSON"):
        tracking.recorded_run_id(path)

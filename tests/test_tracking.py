"""pipeline.tracking against a real MLflow SQLite store, read back with MlflowClient."""

from __future__ import annotations

import signal
import time

import mlflow
import pytest
from tracking_helpers import free_port, points

from pipeline import tracking
from pipeline.process.errors import InputError
from pipeline.tracking.destination import destination


@pytest.fixture
def store(sqlite_store, tmp_path, monkeypatch) -> str:
    """A real SQLite store; the repository root (where .mlflow-spool/ lives) is tmp_path."""
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    return sqlite_store


def finished_run(uri, run_id):
    return mlflow.MlflowClient(uri).get_run(run_id)


def test_default_destination_is_the_original_repository(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    dest = destination()
    assert dest.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert dest.artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()
    assert dest.experiment_name == "mlp-pipeline"


def test_an_explicit_uri_keeps_the_servers_artifact_store(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    assert destination() == tracking.Destination("http://127.0.0.1:5999", "team", None)


def test_every_batch_loss_arrives_in_step_order(store, tmp_path):
    tracker = tracking.start_run({"train.lr": 0.5, "model.hidden": [30, 20]}, {"device": "cpu"})
    # Logged far faster than the store takes them: the sender falls behind and catches up.
    losses = [1.0 / (step + 1) for step in range(6000)]
    with tracking.run_status(tracker):
        for step, loss in enumerate(losses):
            tracker.log_batch_loss(step, loss)
            if step % 2000 == 0:
                tracker.log_metric("epoch_loss", loss, step=step // 2000)
    client = mlflow.MlflowClient(store)
    assert points(store, tracker.run_id) == list(enumerate(losses))  # exact floats
    epochs = points(store, tracker.run_id, "epoch_loss")
    assert epochs == [(0, 1.0), (1, 1 / 2001), (2, 1 / 4001)]
    assert list((tmp_path / tracking.SPOOL_DIR).iterdir()) == []  # delivered: nothing kept
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.5", "model.hidden": "[30, 20]"}
    assert run.data.tags["device"] == "cpu"
    assert client.get_experiment(run.info.experiment_id).name == "tests"


def test_an_exception_ends_the_run_failed_with_losses_flushed(store):
    tracker = tracking.start_run({}, {})
    with pytest.raises(ZeroDivisionError), tracking.run_status(tracker):
        for step in range(1500):
            tracker.log_batch_loss(step, step / 4)
        1 / 0  # noqa: B018
    run = finished_run(store, tracker.run_id)
    assert run.info.status == "FAILED"
    assert points(store, tracker.run_id) == [(step, step / 4) for step in range(1500)]


def test_flush_waits_until_the_points_are_in_the_store(store):
    tracker = tracking.start_run({}, {})
    with tracking.run_status(tracker):
        for step in range(1200):
            tracker.log_batch_loss(step, float(step))
        assert tracker.flush(timeout=120)
        assert len(points(store, tracker.run_id)) == 1200
        assert finished_run(store, tracker.run_id).info.status == "RUNNING"


def test_sigterm_ends_the_run_killed(store):
    tracker = tracking.start_run({}, {})
    with pytest.raises(tracking.Interrupted), tracking.run_status(tracker):
        tracker.log_batch_loss(0, 0.5)
        signal.raise_signal(signal.SIGTERM)
    assert finished_run(store, tracker.run_id).info.status == "KILLED"
    assert points(store, tracker.run_id) == [(0, 0.5)]


def test_an_unreachable_server_is_a_one_line_input_error_at_once(store, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    with pytest.raises(InputError) as raised:
        tracking.start_run({}, {})
    assert time.monotonic() - start < 10  # MLflow's own client would retry for minutes
    assert str(raised.value).startswith(f"MLFLOW_TRACKING_URI={uri}: tracking server unreachable")
    assert "\n" not in str(raised.value)
    with pytest.raises(InputError, match="unreachable"):
        tracking.resume_run("0123456789abcdef")


def test_resume_logs_into_the_same_run(store):
    tracker = tracking.start_run({}, {})
    with tracking.run_status(tracker):
        pass
    again = tracking.resume_run(tracker.run_id)
    with tracking.run_status(again):
        again.log_metric("test_accuracy", 0.75)
    run = finished_run(store, tracker.run_id)
    assert run.data.metrics["test_accuracy"] == 0.75
    assert run.info.status == "FINISHED"
    experiment = mlflow.MlflowClient(store).get_experiment(run.info.experiment_id)
    assert len(mlflow.MlflowClient(store).search_runs([experiment.experiment_id])) == 1


def test_work_done_while_the_run_reopens_fails_the_run_with_its_own_error(store):
    """evaluate and export work while the agent reopens the run: their failure ends it FAILED."""
    tracker = tracking.start_run({}, {"data.name": "wine"})
    with tracking.run_status(tracker):
        pass

    def broken_work() -> None:
        raise InputError("models/checkpoint.pth: file not found")

    with pytest.raises(InputError, match="checkpoint.pth: file not found"):
        tracking.resume_run(tracker.run_id, meanwhile=broken_work)
    run = finished_run(store, tracker.run_id)
    assert run.info.status == "FAILED"
    # Named after its data and commit (this checkout's), not a random name.
    assert run.info.run_name.startswith("wine@") and run.data.tags["data.name"] == "wine"
    commit = run.data.tags["mlflow.source.git.commit"]
    assert run.info.run_name.removeprefix("wine@").removesuffix("-dirty") == commit[:7]


def test_tracking_off_touches_no_store(tmp_path, store, monkeypatch):
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

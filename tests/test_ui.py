"""`make ui`'s command, `python -m pipeline.tracking ui`: a real `mlflow ui` on a free port, its
link printed once /health answers, and nothing left of it when its parent is SIGKILLed; the one
setting every printed link follows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import mlflow
import pytest
from helpers import ROOT, clean_env
from process_helpers import kill_all, refuses_connections, tree, wait_until_gone
from tracking_helpers import free_port

from pipeline.tracking.ui import run_links, ui_address
from pipeline.tracking.ui_server import answers


def test_every_link_follows_one_address(sqlite_store, monkeypatch):
    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    monkeypatch.delenv("UI_PORT", raising=False)
    assert ui_address() == "http://127.0.0.1:5000"
    monkeypatch.setenv("UI_PORT", "5123")  # what `make ui UI_PORT=5123` exports
    assert ui_address() == "http://127.0.0.1:5123"
    experiment = mlflow.set_experiment("tests")
    with mlflow.start_run() as run:
        pass
    # pipeline.compare's links: no --ui, the same address.
    assert run_links(run.info.run_id) == [
        f"http://127.0.0.1:5123/#/experiments/{experiment.experiment_id}/runs/"
        f"{run.info.run_id}?workflowType=machine_learning",
        f"http://127.0.0.1:5123/#/experiments/{experiment.experiment_id}/runs"
        "?workflowType=machine_learning&compareRunsMode=CHART",
    ]
    monkeypatch.setenv("MLFLOW_UI_URL", "https://mlflow.example.org/")  # a UI elsewhere wins
    assert ui_address() == "https://mlflow.example.org"


@pytest.mark.e2e
def test_the_link_comes_once_the_ui_answers_and_the_ui_dies_with_its_parent(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(store)
    experiment_id = client.create_experiment("mlp-pipeline")
    port = free_port()
    command = [sys.executable, "-m", "pipeline.tracking", "ui", "--tracking-uri", store]
    parent = subprocess.Popen(
        command,
        cwd=ROOT,
        env=clean_env(PYTHONPATH=str(ROOT), UI_PORT=str(port)),
        stdout=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(300, parent.kill)  # a UI that never answers fails, not hangs
    timer.start()
    below = set()
    try:
        starting = parent.stdout.readline()
        assert starting.startswith(f"MLflow UI starting on http://127.0.0.1:{port} ")
        link = parent.stdout.readline()
        # Printed only once the server answers: it answers at the moment the line arrives.
        assert answers(f"http://127.0.0.1:{port}")
        assert link == (
            f"Runs: http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs"
            "?workflowType=machine_learning\n"
        )
        below = tree(parent.pid) - {p for p in tree(parent.pid) if p.pid == parent.pid}
        assert any("mlflow" in p.cmdline for p in below)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_until_gone(below, timeout=30) == set()
        assert refuses_connections(port)
    finally:
        timer.cancel()
        parent.kill()
        parent.wait()
        kill_all(below)

"""`make ui` (`python -m pipeline.tracking ui`): a real `mlflow ui` on a free port of 127.0.0.1
only, its link printed once /health answers, and nothing left of it when its parent is
SIGKILLed; the one setting every printed link follows."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import mlflow
import pytest
from helpers import ROOT, clean_env
from process_helpers import (
    LOOPBACK,
    kill_all,
    listening_addresses,
    refuses_connections,
    tree,
    wait_until_gone,
)
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
def test_the_link_comes_once_the_ui_answers_on_loopback_and_the_ui_dies_with_its_parent(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"  # where the Makefile's STORE points
    client = mlflow.MlflowClient(store)
    experiment_id = client.create_experiment("mlp-pipeline")
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    port = free_port()
    # `make ui` as a user runs it; -o: the environment is this test's, so make builds no .venv.
    command = ["make", "-o", ".venv/.installed", "ui", f"BIN={Path(sys.executable).parent}"]
    make = subprocess.Popen(
        [*command, f"UI_PORT={port}"],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(300, make.kill)  # a UI that never answers fails, not hangs
    timer.start()
    below = set()
    try:
        starting = next(line for line in make.stdout if line.startswith("MLflow UI starting"))
        assert starting.startswith(f"MLflow UI starting on http://127.0.0.1:{port} ")
        link = make.stdout.readline()
        # Printed only once the server answers: it answers at the moment the line arrives.
        assert answers(f"http://127.0.0.1:{port}")
        assert link == (
            f"Runs: http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs"
            "?workflowType=machine_learning\n"
        )
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(port) == {LOOPBACK}  # 127.0.0.1, and nothing else
        # The parent: `python -m pipeline.tracking ui`, which make started (through a shell).
        ui = f"{Path(sys.executable).parent}/python -m pipeline.tracking ui "
        [parent] = [p for p in tree(make.pid) if p.cmdline.startswith(ui)]
        below = tree(parent.pid) - {parent}
        assert any("mlflow" in p.cmdline for p in below)
        os.kill(parent.pid, signal.SIGKILL)
        assert wait_until_gone(below, timeout=30) == set()
        assert refuses_connections(port)
    finally:
        timer.cancel()
        # Killing make alone would orphan its shell and the UI below it (they are tied to the
        # UI's parent, not to make): a failed assertion must not leave them running.
        kill_all(tree(make.pid) | below)
        make.wait()

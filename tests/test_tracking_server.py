"""A real tracking server that is down at start, or goes away during training (issue 6 §4)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from helpers import write_params
from tracking_helpers import Server, free_port, points, status, trainer_env, wait_for

from pipeline import tracking

pytestmark = pytest.mark.e2e

# 10,000 training rows in batches of 8, 8 epochs: 10,000 batches, several seconds of training.
LONG_ENOUGH = {
    "seed": 3,
    "data": {
        "kind": "classification",
        "n_samples": 12_500,
        "n_features": 10,
        "n_classes": 3,
        "test_size": 0.2,
        "val_size": 0.0,
    },
    "train": {"epochs": 8, "batch_size": 8, "lr": 0.05, "device": "cpu", "log_every": 1},
}
TRAIN = [
    sys.executable, "-m", "pipeline.stages.train", "--params", "params.yaml", "--data", "data",
    "--checkpoint", "models/checkpoint.pth", "--metrics", "metrics/train.json", "--plots", "plots",
]  # fmt: skip


def stage(command: list[str], project, uri: str, **kwargs):
    env = trainer_env(project, uri)
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, **kwargs)


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    write_params(project / "params.yaml", LONG_ENOUGH)
    generate = [sys.executable, "-m", "pipeline.stages.generate", "--params", "params.yaml"]
    done = stage([*generate, "--out", "data"], project, "unused", timeout=300)
    assert done.returncode == 0, done.stderr
    return project


def test_a_server_that_is_down_stops_training_before_it_starts(project):
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    done = stage(TRAIN, project, uri, timeout=300)
    elapsed = time.monotonic() - start
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: MLFLOW_TRACKING_URI={uri}: tracking server unreachable (Connection refused); "
        "start the server, or unset MLFLOW_TRACKING_URI to track into the embedded store"
    ]
    assert not (project / "metrics").exists() and not (project / "models").exists()
    assert elapsed < 60  # seconds of start-up, not MLflow's minutes of retries


def test_losses_kept_while_the_server_is_away_are_replayed_into_the_run(project, tmp_path):
    server = Server(tmp_path, free_port()).start()
    spool_dir = project / tracking.SPOOL_DIR
    trainer = subprocess.Popen(
        TRAIN,
        cwd=project,
        env=trainer_env(project, server.uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The first points have reached the server: now it goes away, mid-training.
        wait_for(lambda: list(spool_dir.glob("*.sent")), 300, "the first points to be sent")
    finally:
        server.stop()
    output, errors = trainer.communicate(timeout=600)

    # Training finished and wrote its outputs; the points it could not send are kept.
    assert trainer.returncode == 0, errors
    assert "trained 10000 steps" in output
    summary = json.loads((project / "metrics/train.json").read_text())
    assert (project / "models/checkpoint.pth").stat().st_size > 0
    rows = (project / "plots/loss.csv").read_text().splitlines()[1:]
    losses = [(int(step), float(loss)) for step, loss in (row.split(",") for row in rows)]
    assert len(losses) == 10_000
    run_id = summary["mlflow_run_id"]
    spool = tracking.Spool(spool_dir / f"{run_id}.json")
    assert spool.status == "FINISHED"
    assert 0 < spool.sent_offset() < spool.points.stat().st_size  # some sent, the rest kept
    assert "python -m pipeline.tracking replay" in errors

    server.start()  # the same store, back again
    try:
        replay = [sys.executable, "-m", "pipeline.tracking", "replay"]
        done = stage(replay, project, server.uri, timeout=600)
        assert done.returncode == 0, done.stderr
        # (Above it, MLflow prints links to the run it has just marked FINISHED.)
        report = done.stdout.strip().splitlines()[-1]
        assert report.startswith(f"run {run_id}: ")
        assert report.endswith("metric points sent, marked FINISHED")
        assert points(server.uri, run_id) == losses  # every loss, once, in step order
        assert len(points(server.uri, run_id, "epoch_loss")) == 8
        assert status(server.uri, run_id) == "FINISHED"
    finally:
        server.stop()
    assert list(spool_dir.iterdir()) == []

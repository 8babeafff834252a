"""Helpers for the tracking tests: trainer processes, a store read back, a real MLflow server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
from helpers import ROOT

from pipeline.process.lifeline import popen_tied


def points(uri: str, run_id: str, key: str = "train_loss") -> list[tuple[int, float]]:
    """(step, value) of every point of `key` in the run, in step order."""
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in history)


def status(uri: str, run_id: str) -> str:
    return mlflow.MlflowClient(uri).get_run(run_id).info.status


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return value


def trainer_env(root: Path, uri: str, **extra: str) -> dict[str, str]:
    """A child process that tracks into `uri`, with its spool under `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.pop("PIPELINE_TRACKING", None)
    env.update(
        PYTHONPATH=str(ROOT),
        DVC_ROOT=str(root),
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_EXPERIMENT_NAME="tests",
        **extra,
    )
    return env


# A trainer without torch: opens a run, logs `count` losses and an epoch's loss (as training
# does at an epoch's end), prints the run id, then does what argv[2] says (finish | wait)
# inside run_status.
FAKE_TRAINER = """
import sys, time
from pipeline import tracking
count, then = int(sys.argv[1]), sys.argv[2]
tracker = tracking.start_run({"count": count}, {})
with tracking.run_status(tracker):
    for step in range(count):
        tracker.log_batch_loss(step, 1.0 / (step + 1))
    tracker.log_metric("epoch_loss", 0.5, step=0)
    print(tracker.run_id, flush=True)
    if then == "wait":
        time.sleep(120)
"""


def start_trainer(root: Path, uri: str, count: int, then: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", FAKE_TRAINER, str(count), then],
        cwd=root,
        env=trainer_env(root, uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expected_losses(count: int) -> list[tuple[int, float]]:
    return [(step, 1.0 / (step + 1)) for step in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real `mlflow server` on a loopback port over a SQLite file; stop() kills it."""

    def __init__(self, workdir: Path, port: int):
        self.workdir, self.port = workdir, port
        self.uri = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.workdir / 'server.db'}",
            "--artifacts-destination", str(self.workdir / "artifacts"),
        ]  # fmt: skip
        self.process = popen_tied(
            command,
            cwd=self.workdir,
            env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 120, f"mlflow server on port {self.port}")
        return self

    def _answers(self) -> bool:
        import urllib.request

        assert self.process.poll() is None, "mlflow server exited"
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # the server and its workers at once, as a crash would
            self.process.wait()

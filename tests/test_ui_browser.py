"""`make ui`'s link in a real browser: headless Chromium lands on the runs table.

MLflow 3's UI opens an experiment on its GenAI overview; the link the project prints asks for
the Model training view. Chromium renders the page (the UI is a JavaScript app) and dumps the
DOM, in which the run's name and the runs table must be; the bare experiment address, for
contrast, shows neither.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from helpers import clean_env
from tracking_helpers import free_port, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The machine's network is closed and the profile is fresh: nothing for Chromium to fetch.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_NAME = "lr-first"
LINK = re.compile(r"^Runs: (http://\S+)$", re.MULTILINE)


def rendered(url: str, profile: Path) -> str:
    """The page's DOM after its scripts had 30 s of (virtual) time to fetch and render."""
    budget = "--virtual-time-budget=30000"
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", budget, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@contextlib.contextmanager
def make_ui(repo: Path, port: int):
    """`make ui` in `repo`, as a user starts it; yields its output so far, a callable."""
    log = repo / "ui.log"
    # -o: the environment is this test's, so make does not build .venv first.
    command = ["make", "-o", ".venv/.installed", "ui", f"BIN={Path(sys.executable).parent}"]
    with log.open("w") as out:
        server = subprocess.Popen(
            [*command, f"UI_PORT={port}"],
            cwd=repo,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield log.read_text
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed; .ci/run installs it")
def test_make_ui_link_opens_the_runs_table(project, tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    experiment = mlflow.set_experiment("mlp-pipeline")
    with mlflow.start_run(run_name=RUN_NAME):
        mlflow.log_metric("train_loss", 0.5, step=0)
    mlflow.set_tracking_uri(None)

    port = free_port()
    with make_ui(project, port) as output:
        link = wait_for(lambda: LINK.search(output()), 60, "make ui to print its link").group(1)
        assert link == (
            f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs"
            "?workflowType=machine_learning"
        )
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/health"), 120, "make ui to answer")
        started = time.monotonic()
        page = rendered(link, tmp_path / "profile")
        print(f"Chromium rendered the runs page in {time.monotonic() - started:.1f} s")
        bare = rendered(link.split("/runs?")[0], tmp_path / "profile-bare")

    assert RUN_NAME in page
    assert 'role="grid"' in page  # the runs table
    assert RUN_NAME not in bare  # the GenAI overview the bare address opens

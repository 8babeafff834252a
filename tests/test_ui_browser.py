"""`make ui`'s link in a real browser: headless Chromium lands on the runs table.

MLflow 3's UI opens an experiment on its GenAI overview; the link the project prints asks for
the Model training view. Chromium renders the page (the UI is a JavaScript app) and dumps the
DOM, in which the run's name and the runs table must be; the bare experiment address, for
contrast, shows neither.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from helpers import clean_env
from tracking_helpers import free_port, wait_for

from pipeline.process.lifeline import popen_tied

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
    browser = popen_tied(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", budget, "--dump-dom", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = browser.communicate(timeout=180)
    finally:
        browser.kill()  # Chromium's helper processes too
        browser.wait()
    assert browser.returncode == 0, err[-3000:]
    return out


@contextlib.contextmanager
def make_ui(repo: Path, port: int):
    """`make ui` in `repo`, as a user starts it; yields its output so far, a callable."""
    log = repo / "ui.log"
    # -o: the environment is this test's, so make does not build .venv first.
    command = ["make", "-o", ".venv/.installed", "ui", f"BIN={Path(sys.executable).parent}"]
    with log.open("w") as out:
        server = popen_tied(
            [*command, f"UI_PORT={port}"],
            cwd=repo,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log.read_text
    finally:
        server.kill()  # make, the UI and its workers
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
        link = wait_for(lambda: LINK.search(output()), 180, "make ui to print its link").group(1)
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

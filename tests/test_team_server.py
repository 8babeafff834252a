"""The team's tracking server for real: PostgreSQL, `mlflow server` with basic auth, the pipeline.

One PostgreSQL cluster and one MLflow server serve each pytest worker's session: the fixture runs
the documented command (scripts/team_server.py, what `make server` runs) in a temporary directory on
free loopback ports, and stops it at the end. Tests record as a non-admin teammate, the way a
team member would, and read back as what the server stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dvc.api
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import (
    ROOT,
    SMALL_PARAMS,
    clean_env,
    commit_all,
    run,
    skip_without_postgres,
    write_params,
)
from mlflow.server import get_app_client
from process_helpers import LOOPBACK, listening_addresses
from sweep_helpers import queued_names, wait_for_queue

from pipeline import tracking
from pipeline.config.params import load_params
from pipeline.data.splits import load_split
from pipeline.model import checkpoint
from pipeline.process.errors import InputError
from pipeline.process.lifeline import popen_tied
from scripts import team_server

pytestmark = pytest.mark.e2e

ADMIN = ("admin", "team-admin-password")
TEAMMATE = ("teammate", "teammate-password")
READY = re.compile(r"MLflow tracking server ready: (http://127\.0\.0\.1:\d+)")
START_TIMEOUT_S = 240


@dataclass(frozen=True)
class TeamServer:
    url: str
    state_dir: Path

    def env(self, experiment: str, credentials: tuple[str, str] | None = TEAMMATE) -> dict:
        """What a teammate exports before `dvc repro`: server, experiment, credentials."""
        extra = {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_EXPERIMENT_NAME": experiment}
        if credentials:
            extra["MLFLOW_TRACKING_USERNAME"], extra["MLFLOW_TRACKING_PASSWORD"] = credentials
        return clean_env(**extra)


def _wait_for_ready(server: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = READY.search(log.read_text())
        if found:
            return found.group(1)
        if server.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"team server did not start:\n{log.read_text()[-4000:]}")


def _stop(server: subprocess.Popen, state_dir: Path) -> None:
    """SIGTERM, as a user's Ctrl-C or a service manager would; force only if it hangs."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=90)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if (state_dir / "postgres" / "postmaster.pid").exists():
        pg_ctl = str(team_server.postgres_bin_dir() / "pg_ctl")
        cmd = [pg_ctl, "-D", str(state_dir / "postgres"), "stop", "-m", "immediate"]
        subprocess.run(team_server.as_postgres_user(cmd), capture_output=True, timeout=60)


def _refuses_connections(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture(scope="session")
def team() -> Iterator[TeamServer]:
    skip_without_postgres()
    # Not under pytest's tmp root: that is private to this account, and PostgreSQL runs as
    # `postgres` when the suite runs as root.
    state_dir = Path(tempfile.mkdtemp(prefix="mlp-team-"))
    log = state_dir / "server.out"
    env = clean_env(MLFLOW_AUTH_ADMIN_USERNAME=ADMIN[0], MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN[1])
    cmd = [sys.executable, "scripts/team_server.py", "--dir", str(state_dir)]
    cmd += ["--port", "0", "--basic-auth"]
    started = time.monotonic()
    with log.open("w") as out:
        server = popen_tied(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = None
    try:
        url = _wait_for_ready(server, log)
        print(f"PostgreSQL + MLflow server ready in {time.monotonic() - started:.1f} s")
        with _signed_in(ADMIN):
            get_app_client("basic-auth", tracking_uri=url).create_user(*TEAMMATE)
        yield TeamServer(url, state_dir)
    finally:
        _stop(server, state_dir)
        output = log.read_text()
        shutil.rmtree(state_dir, ignore_errors=True)
    assert server.returncode == 0, output[-4000:]
    assert output.rstrip().endswith("stopped")
    assert url is None or _refuses_connections(url)


@contextlib.contextmanager
def _signed_in(credentials: tuple[str, str] | None):
    """MLflow's client reads the credentials from the environment at every request."""
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    before = {name: os.environ.pop(name, None) for name in names}
    if credentials:
        os.environ.update(dict(zip(names, credentials, strict=True)))
    try:
        yield
    finally:
        for name, value in before.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


@pytest.fixture
def as_admin(team):
    with _signed_in(ADMIN):
        yield mlflow.MlflowClient(team.url)


def test_server_and_database_listen_on_loopback_only(team):
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from (not Linux)")
    mlflow_port = int(team.url.rsplit(":", 1)[1])
    pid = (team.state_dir / "postgres" / "postmaster.pid").read_text().splitlines()
    postgres_port = int(pid[3])  # postmaster.pid: pid, data dir, start time, port, ...
    assert listening_addresses(mlflow_port) == {LOOPBACK}
    assert listening_addresses(postgres_port) == {LOOPBACK}


def test_without_credentials_refused_with_them_a_run_is_recorded(team, as_admin, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.url)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "access")
    params = {"train.lr": 0.1, "seed": 7}

    for credentials in (None, (TEAMMATE[0], "not-the-password")):
        with _signed_in(credentials), pytest.raises(InputError) as refused:
            tracking.start_run(params, {})
        assert "(401, " in str(refused.value)
        assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in str(refused.value)
        assert "\n" not in str(refused.value)
    assert as_admin.get_experiment_by_name("access") is None

    with _signed_in(TEAMMATE):
        tracker = tracking.start_run(params, {"purpose": "access test"})
        with tracking.run_status(tracker):
            tracker.log_metric("epoch_loss", 0.5, step=0)
    recorded = as_admin.get_run(tracker.run_id)
    assert recorded.info.status == "FINISHED"
    assert recorded.data.params == {"train.lr": "0.1", "seed": "7"}
    logged = {k: v for k, v in recorded.data.metrics.items() if not k.startswith("system/")}
    assert logged == {"epoch_loss": 0.5}
    assert "system/cpu_utilization_percentage" in recorded.data.metrics  # sampled through it too
    assert recorded.data.tags["purpose"] == "access test"


def test_an_experiment_not_granted_is_refused_until_the_admin_grants_edit(
    team, as_admin, monkeypatch
):
    experiment_id = as_admin.create_experiment("owned-by-admin")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.url)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "owned-by-admin")
    with _signed_in(TEAMMATE), pytest.raises(InputError, match=r"'teammate' may not write.*403"):
        tracking.start_run({"seed": 1}, {})

    with _signed_in(ADMIN):
        auth = get_app_client("basic-auth", tracking_uri=team.url)
        auth.grant_user_permission(TEAMMATE[0], "experiment", experiment_id, "EDIT")
    with _signed_in(TEAMMATE):
        tracker = tracking.start_run({"seed": 1}, {})
        with tracking.run_status(tracker):
            pass
    assert as_admin.get_run(tracker.run_id).info.experiment_id == experiment_id


def test_dvc_repro_records_a_complete_run_on_the_server(team, project, tmp_path, monkeypatch):
    write_params(project / "params.yaml", SMALL_PARAMS)
    commit_all(project, "small params")

    refused = run(["dvc", "repro"], project, env=team.env("repro", credentials=None), check=False)
    assert refused.returncode != 0
    assert "error: MLFLOW_TRACKING_URI=http://127.0.0.1:" in refused.stderr
    assert "(401, no MLFLOW_TRACKING_USERNAME set)" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout

    run(["dvc", "repro"], project, env=team.env("repro"))
    run_id = json.loads((project / "metrics/train.json").read_text())["mlflow_run_id"]
    with _signed_in(TEAMMATE):
        client = mlflow.MlflowClient(team.url)
        [only] = client.search_runs([client.get_experiment_by_name("repro").experiment_id])
        assert only.info.run_id == run_id
        workspace = lambda path: (project / path).read_text()  # noqa: E731
        downloaded = assert_complete_run(client, run_id, workspace, tmp_path)
        for name, path in downloaded.items():
            assert path.read_bytes() == (project / "models" / name).read_bytes(), name

        monkeypatch.setenv("MLFLOW_TRACKING_URI", team.url)
        mlflow.set_tracking_uri(team.url)
        pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    test = load_split(project / "data/test.npz")
    model, arch = checkpoint.load(project / "models/model.pth")
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(test.features)), dim=1).numpy()
    rows = pd.DataFrame(test.features.astype(np.float64), columns=list(arch.features))
    answer = pyfunc.predict(rows)
    probabilities = [f"prob_{c}" for c in arch.classes]
    assert list(answer.columns) == [*probabilities, "class"]
    np.testing.assert_allclose(answer[probabilities].to_numpy(), expected, rtol=1e-6)
    assert answer["class"].tolist() == expected.argmax(axis=1).tolist()


def test_queued_sweep_with_two_workers_records_both_runs(team, project, tmp_path):
    write_params(project / "params.yaml", SMALL_PARAMS)
    commit_all(project, "small params")
    env = team.env("sweep")
    queued = run(["dvc", "exp", "run", "--queue", "-S", "train.lr=0.05,0.1"], project, env=env)
    names = queued_names(queued.stdout + queued.stderr)
    try:
        # The workers outlive `dvc queue start` and hold its output open: a file, not a pipe.
        with (project.parent / "queue.out").open("w") as out:
            subprocess.run(
                ["dvc", "queue", "start", "-j", "2"], cwd=project, env=env, stdout=out, check=True
            )
        statuses = wait_for_queue(project, names, env)
    finally:
        run(["dvc", "queue", "stop", "--kill"], project, env=env, check=False)
    assert len(names) == 2 and set(statuses.values()) == {"Success"}, statuses

    experiments = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], project)
    refs = experiments.stdout.split()
    assert len(refs) == 2
    shown = run(["dvc", "exp", "show", "--csv"], project, env=env).stdout
    with _signed_in(TEAMMATE):
        client = mlflow.MlflowClient(team.url)
        run_ids, learning_rates = set(), set()
        for ref in refs:

            def show(path: str, ref: str = ref) -> str:
                # Outputs are DVC-cached, not in git: DVC reads them at the experiment's ref.
                return dvc.api.read(path, repo=str(project), rev=ref)

            run_id = json.loads(show("metrics/train.json"))["mlflow_run_id"]
            assert run_id in shown
            assert_complete_run(client, run_id, show, tmp_path / run_id)
            run_ids.add(run_id)
            learning_rates.add(client.get_run(run_id).data.params["train.lr"])
        sweep = client.get_experiment_by_name("sweep").experiment_id
        assert {r.info.run_id for r in client.search_runs([sweep])} == run_ids
    assert learning_rates == {"0.05", "0.1"}


def assert_complete_run(
    client, run_id: str, show: Callable[[str], str], scratch: Path
) -> dict[str, Path]:
    """The run holds what the commit's files say: params, every loss point, metrics, artifacts.

    `show(path)` reads a file of the commit that produced the run (workspace or experiment ref).
    Returns the state_dict files downloaded into `scratch`, whose md5 dvc.lock has confirmed.
    """
    recorded = client.get_run(run_id)
    assert recorded.info.status == "FINISHED"

    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "params.yaml").write_text(show("params.yaml"))
    expected = load_params(scratch / "params.yaml").flat()
    assert recorded.data.params == {key: str(value) for key, value in expected.items()}

    training = json.loads(show("metrics/train.json"))
    rows = [line.split(",") for line in show("plots/loss.csv").splitlines()[1:]]
    history = sorted(client.get_metric_history(run_id, "train_loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(int(s), float(v)) for s, v in rows]
    assert len(history) == training["steps"]

    evaluation = json.loads(show("metrics/eval.json"))
    assert recorded.data.metrics["test_accuracy"] == evaluation["test_accuracy"]
    assert recorded.data.metrics["train_accuracy"] == evaluation["train_accuracy"]
    assert recorded.data.metrics["val_accuracy"] == training["val_accuracy"]

    lock = yaml.safe_load(show("dvc.lock"))
    md5 = {out["path"]: out["md5"] for out in lock["stages"]["export"]["outs"]}
    downloaded = {}
    for name in ("model.pth", "model.json"):
        path = Path(client.download_artifacts(run_id, f"state_dict/{name}", str(scratch)))
        assert hashlib.md5(path.read_bytes()).hexdigest() == md5[f"models/{name}"], name
        downloaded[name] = path
    return downloaded

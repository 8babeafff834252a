"""From a registered training to answers over HTTP, for real.

One `dvc repro` of the notebook's toy params with `export.register: true` in a project copy,
then: the version it registered, `pipeline.predict` from the registry, and the real
`mlflow models serve` answering the notebook's five training points.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pytest
from helpers import (
    NOTEBOOK_PARAMS,
    NOTEBOOK_PROBABILITIES,
    ROOT,
    clean_env,
    commit_all,
    copy_project,
    run,
    write_params,
)
from tracking_helpers import free_port, wait_for

from pipeline.data.synthetic import TOY_TRAIN
from pipeline.process.lifeline import popen_tied

pytestmark = pytest.mark.e2e

MODEL = "mlp-pipeline"
SERVE_TIMEOUT_S = 180


def store_env(repo: Path) -> dict[str, str]:
    # PYTHONPATH: the model's code is this checkout's pipeline, as `make run` installs it.
    return clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}", PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """A project that trained, evaluated, exported and registered the notebook's model."""
    repo = copy_project(tmp_path_factory.mktemp("serving") / "repo")
    params = {**NOTEBOOK_PARAMS, "export": {"register": True, "model_name": MODEL}}
    write_params(repo / "params.yaml", params)
    commit_all(repo, "the notebook's params, registered")
    run(["dvc", "repro"], repo)
    (repo / "points.csv").write_text("x0,x1\n" + "".join(f"{a},{b}\n" for a, b in TOY_TRAIN[0]))
    return repo


def client(repo: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")


def trained_run(repo: Path) -> str:
    return json.loads((repo / "metrics/train.json").read_text())["mlflow_run_id"]


def test_a_registered_training_is_one_version_tagged_with_its_run(toy):
    [version] = client(toy).search_model_versions(f"name = '{MODEL}'")
    evaluation = json.loads((toy / "metrics/eval.json").read_text())
    head = run(["git", "rev-parse", "HEAD"], toy).stdout.strip()
    assert version.run_id == trained_run(toy)
    # No validation split in the notebook's params: no val_accuracy to tag with.
    assert version.tags == {
        "run_id": trained_run(toy),
        "git.commit": head,
        "test_accuracy": str(evaluation["test_accuracy"]),
    }

    # Export again for the same run (DVC reruns it, the training stays): no second version.
    rerun = run(["dvc", "repro", "-f", "-s", "export"], toy)
    assert "Running stage 'export'" in rerun.stdout
    assert len(client(toy).search_model_versions(f"name = '{MODEL}'")) == 1


def predict(repo: Path, model: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.predict", "--model", model, "--input", "points.csv"]
    return run(command, repo, env=store_env(repo), check=check)


def test_predict_from_the_registry_prints_what_predict_from_the_files_prints(toy):
    promoted = run([sys.executable, "-m", "pipeline.compare", "--promote"], toy, check=False)
    assert promoted.returncode == 2  # no validation split: compare refuses to choose
    client(toy).set_registered_model_alias(MODEL, "champion", "1")

    local = predict(toy, "models/model.pth").stdout
    rows = [line.split(",") for line in local.splitlines()[1:]]
    assert [[float(p) for p in row[:2]] for row in rows] == NOTEBOOK_PROBABILITIES
    for uri in (f"models:/{MODEL}@champion", f"models:/{MODEL}/1"):
        done = predict(toy, uri)
        assert done.stdout == local
        assert done.stderr == ""


@pytest.mark.parametrize(
    "uri, message",
    [
        ("models:/no-such-model@champion", "no registered model named 'no-such-model'"),
        (f"models:/{MODEL}@no-such-alias", f"'{MODEL}' has no alias 'no-such-alias'"),
        (f"models:/{MODEL}/99", f"'{MODEL}' has no version 99"),
        (f"models:/{MODEL}", "not a registry URI; expected models:/<name>@<alias> or"),
    ],
)
def test_an_unknown_registry_uri_is_one_line_and_exit_2(toy, uri, message):
    done = predict(toy, uri, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"error: {uri}: ") or done.stderr.startswith("error: --model")
    assert message in done.stderr


@contextlib.contextmanager
def served(repo: Path, model_uri: str):
    """The real `mlflow models serve` on a free loopback port; its whole tree dies after."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)]
    log = repo.parent / f"serve-{port}.log"
    with log.open("w") as out:
        # Tied: the server and its workers end with this test process, however it ends.
        server = popen_tied(
            command, cwd=repo, env=store_env(repo), stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _pings(url, server, log), SERVE_TIMEOUT_S, f"{model_uri} served")
        yield url
    finally:
        server.kill()
        server.wait()


def _pings(url: str, server: subprocess.Popen, log: Path) -> bool:
    assert server.poll() is None, f"mlflow models serve exited:\n{log.read_text()[-3000:]}"
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_the_served_model_answers_the_notebook_over_http(toy):
    client(toy).set_registered_model_alias(MODEL, "champion", "1")
    points = {"dataframe_split": {"columns": ["x0", "x1"], "data": [list(p) for p in TOY_TRAIN[0]]}}
    with served(toy, f"models:/{MODEL}@champion") as url:
        status, answer = post(url, points)
        assert status == 200, answer
        rows = answer["predictions"]
        assert [sorted(row) for row in rows] == [["class", "prob_0", "prob_1"]] * 5
        assert [[round(row["prob_0"], 4), round(row["prob_1"], 4)] for row in rows] == (
            NOTEBOOK_PROBABILITIES
        )
        assert [row["class"] for row in rows] == TOY_TRAIN[1]

        for wrong in ({"columns": ["x0"], "data": [[1.0]]}, {"data": [[1.0, 2.0, 3.0]]}):
            status, answer = post(url, {"dataframe_split": wrong})
            assert 400 <= status < 500, answer
            assert "x0" in answer["message"] and "x1" in answer["message"], answer

        status, answer = post(url, points)  # still answering
        assert status == 200
        assert [row["class"] for row in answer["predictions"]] == TOY_TRAIN[1]

"""Stale runs and the compare command's refusals, against a real MLflow store and real processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import mlflow
import pytest
from helpers import run

from pipeline import tracking


def dead_process() -> tuple[int, str]:
    """The pid and start time of a process that really ran and was SIGKILLed."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = tracking.process_start(child.pid)
    child.kill()
    child.wait()
    return child.pid, started


# The runs a test opened: their tracking agents are let go when the test ends.
OPENED: list = []


@pytest.fixture(autouse=True)
def end_opened_runs():
    yield
    while OPENED:
        with contextlib.suppress(Exception):  # a run the test ended already
            OPENED.pop().end("FINISHED")


def open_run(store: str, **process: str):
    """A RUNNING run; `process` overrides its process.* tags (host, pid, started)."""
    tracker = tracking.start_run({}, {}, system_metrics=False)
    OPENED.append(tracker)
    if process:
        tracker.set_tags({f"process.{key}": value for key, value in process.items()})
    client = mlflow.MlflowClient(store)
    return client, client.get_run(tracker.run_id)


def status(client, run) -> str:
    return client.get_run(run.info.run_id).info.status


def test_a_run_whose_process_was_killed_ends_killed(sqlite_store):
    pid, started = dead_process()
    client, run_ = open_run(sqlite_store, pid=str(pid), started=started)
    assert tracking.end_stale_runs(client, run_.info.experiment_id) == [run_.info.run_id]
    assert status(client, run_) == "KILLED"


def test_a_reused_pid_is_not_the_process_that_opened_the_run(sqlite_store):
    # This process is alive, but it is not the one that started at the recorded time.
    client, run_ = open_run(sqlite_store, pid=str(os.getpid()), started=dead_process()[1])
    assert tracking.end_stale_runs(client, run_.info.experiment_id) == [run_.info.run_id]
    assert status(client, run_) == "KILLED"


def test_a_run_whose_process_lives_is_left_running(sqlite_store):
    client, run_ = open_run(sqlite_store)
    assert run_.data.tags["process.pid"] == str(os.getpid())
    assert tracking.end_stale_runs(client, run_.info.experiment_id) == []
    assert status(client, run_) == "RUNNING"


def test_runs_this_host_cannot_judge_are_left_alone(sqlite_store):
    pid, started = dead_process()
    client, elsewhere = open_run(
        sqlite_store, host="elsewhere.invalid", pid=str(pid), started=started
    )
    _, untagged = open_run(sqlite_store, pid=str(pid), started=started)
    client.delete_tag(untagged.info.run_id, "process.started")
    assert tracking.end_stale_runs(client, elsewhere.info.experiment_id) == []
    assert status(client, elsewhere) == status(client, untagged) == "RUNNING"


def test_evaluate_reopening_a_run_takes_it_over(sqlite_store):
    pid, started = dead_process()  # train, long finished
    client, run_ = open_run(sqlite_store, pid=str(pid), started=started)
    client.set_terminated(run_.info.run_id, "FINISHED")
    resumed = tracking.resume_run(run_.info.run_id)
    assert status(client, run_) == "RUNNING"
    assert tracking.end_stale_runs(client, run_.info.experiment_id) == []
    with tracking.run_status(resumed):
        pass
    assert status(client, run_) == "FINISHED"
    assert client.get_run(run_.info.run_id).data.tags["process.pid"] == str(os.getpid())


@pytest.mark.parametrize("promote", [[], ["--promote"]], ids=["compare", "promote"])
def test_compare_refuses_to_choose_without_validation_accuracy(project, promote):
    done = run([sys.executable, "-m", "pipeline.compare", *promote], project, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: no experiment has metrics/train.json:val_accuracy; run experiments with "
        "data.val_size > 0 (a validation split) first"
    ]


def test_only_running_runs_are_considered(sqlite_store):
    pid, started = dead_process()
    ended = {}
    for status_ in ("FINISHED", "FAILED", "KILLED"):
        client, ended[status_] = open_run(sqlite_store, pid=str(pid), started=started)
        client.set_terminated(ended[status_].info.run_id, status_)
    assert tracking.end_stale_runs(client, ended["FAILED"].info.experiment_id) == []
    assert {name: status(client, run_) for name, run_ in ended.items()} == {
        name: name for name in ended
    }

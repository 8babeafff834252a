"""The tracking agent: the training process imports no MLflow; the agent samples the system's
metrics over the run and records the trainer's peak memory (read back from a real store)."""

from __future__ import annotations

import resource
import subprocess
import sys

import mlflow
import psutil
import pytest
from tracking_helpers import points, trainer_env

from pipeline import tracking

CPU, MEMORY = "system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"
PEAK = "system/train_peak_memory_megabytes"


@pytest.fixture
def store(sqlite_store, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("PIPELINE_SYSTEM_METRICS", raising=False)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    return sqlite_store


def system_metrics(uri: str, run_id: str) -> dict[str, float]:
    metrics = mlflow.MlflowClient(uri).get_run(run_id).data.metrics
    return {key: value for key, value in metrics.items() if key.startswith("system/")}


def test_system_metrics_cover_the_run_and_the_peak_is_the_trainers(store):
    tracker = tracking.start_run({}, {})
    with tracking.run_status(tracker):
        busy = sum(i * i for i in range(3_000_000))  # a moment of CPU work to sample
        tracker.log_batch_loss(0, float(busy % 7))
        before_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    after_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    metrics = system_metrics(store, tracker.run_id)
    assert 0 <= metrics[CPU] <= 100
    # The machine's used memory as psutil (MLflow's source) reads it now, within what other
    # processes on a shared machine move it by.
    used_now = psutil.virtual_memory().used / 1e6
    assert 0.5 * used_now < metrics[MEMORY] < 2 * used_now
    # This process's peak resident set, as the kernel counts it, when the run ended.
    assert before_end <= metrics[PEAK] <= after_end
    samples = points(store, tracker.run_id, CPU)
    assert [step for step, _ in samples] == list(range(len(samples)))  # one step per sample
    assert points(store, tracker.run_id) == [(0, float(busy % 7))]


def test_pipeline_system_metrics_0_samples_nothing(store, monkeypatch):
    monkeypatch.setenv("PIPELINE_SYSTEM_METRICS", "0")
    tracker = tracking.start_run({}, {})
    with tracking.run_status(tracker):
        tracker.log_batch_loss(0, 0.25)
    assert system_metrics(store, tracker.run_id) == {}
    assert points(store, tracker.run_id) == [(0, 0.25)]


TRAINER = """
import sys
from pipeline import tracking
tracking.prepare_tracking()
tracker = tracking.start_run({"train.lr": 0.5}, {"device": "cpu"})
with tracking.run_status(tracker):
    for step in range(100):
        tracker.log_batch_loss(step, step / 100)
    tracker.set_tags({"late": "yes"})
print(tracker.run_id, "mlflow" in sys.modules)
"""


def test_a_tracked_process_never_imports_mlflow(store, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", TRAINER],
        cwd=tmp_path,
        env=trainer_env(tmp_path, store),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run_id, imported = done.stdout.split()
    assert imported == "False"
    run = mlflow.MlflowClient(store).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.5"}
    assert (run.data.tags["device"], run.data.tags["late"]) == ("cpu", "yes")
    assert points(store, run_id) == [(step, step / 100) for step in range(100)]


def test_the_prepared_agent_survives_torch_building_an_optimizer(store, monkeypatch):
    """torch sets TORCHINDUCTOR_CACHE_DIR when the first optimizer is built, after the agent was
    prepared: the training must still take that agent, not start a second one (3 s more)."""
    import torch

    from pipeline.tracking.agent import client as agent

    root = tracking.repo_root()
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    agent.prepare(root)
    prepared = agent._prepared
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # what training does
    taken = agent.take_agent(root)
    taken.close()
    assert taken is prepared


def test_a_prepared_agent_for_another_store_is_replaced(store, monkeypatch, tmp_path):
    from pipeline.tracking.agent import client as agent

    root = tracking.repo_root()
    agent.prepare(root)
    prepared = agent._prepared
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    taken = agent.take_agent(root)
    taken.close()
    assert taken is not prepared
    assert prepared.process.wait(timeout=60) is not None  # the stale one was told to go


def test_the_callers_own_work_runs_while_the_agent_opens_the_run(store):
    done: list[str] = []
    tracker = tracking.start_run({"train.lr": 0.5}, {}, meanwhile=lambda: done.append("done"))
    with tracking.run_status(tracker):
        tracker.log_batch_loss(0, 0.5)
    assert done == ["done"]  # once, and the run still opened as it would without it
    run = mlflow.MlflowClient(store).get_run(tracker.run_id)
    assert (run.info.status, run.data.params) == ("FINISHED", {"train.lr": "0.5"})


def test_an_interruption_during_the_callers_work_lets_the_agent_go(store):
    def interrupted():
        raise KeyboardInterrupt

    before = set(psutil.Process().children())  # a pytest worker may have children of its own
    with pytest.raises(KeyboardInterrupt):
        tracking.start_run({}, {}, meanwhile=interrupted)
    agents = set(psutil.Process().children()) - before
    assert agents, "the agent should have been started"
    _, alive = psutil.wait_procs(agents, timeout=60)
    assert alive == []

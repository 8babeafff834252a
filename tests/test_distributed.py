"""DDP on the CPU with real processes (gloo), against one process at twice the batch size.

`python -m pipeline.stages.train` with `strategy: ddp` starts its workers through torchrun's elastic
launcher; the two-node test starts two real `torchrun` processes on loopback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import mlflow
import pytest
import torch
from distributed_helpers import (
    DDP_PARAMS,
    STEPS,
    Outputs,
    free_port,
    make_data,
    max_abs_difference,
    processes_mentioning,
    stage_env,
    train,
    with_train,
)
from helpers import write_params

from pipeline.config.params import load_params
from pipeline.data.batching import make_loader
from pipeline.data.splits import Split
from pipeline.model import checkpoint
from pipeline.model.network import NeuralNetwork
from pipeline.process.errors import InputError
from pipeline.runtime import distributed
from pipeline.stages import train as train_stage


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """params.yaml (2 processes at batch 8) and its data, shared by the module's trainings."""
    return make_data(tmp_path_factory.mktemp("ddp"), DDP_PARAMS)


@pytest.fixture(scope="module")
def store(workspace) -> str:
    return f"sqlite:///{workspace / 'mlflow.db'}"


@pytest.fixture(scope="module")
def ddp_run(workspace, store) -> Outputs:
    """The stage command as DVC runs it, with strategy ddp: two gloo workers, tracked."""
    outputs = Outputs(workspace / "two-processes")
    done = train(
        outputs.args(workspace / "params.yaml", workspace / "data"),
        workspace,
        stage_env(store, experiment="ddp"),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return outputs


def batches(loader) -> list[list[int]]:
    return [labels.tolist() for _, labels in loader]


def test_rank_batches_together_are_the_single_process_batches():
    """DistributedSampler interleaves (rank r reads r, r+2, ...): batch i of both ranks is batch i
    of one process at twice the batch size, and every rank's batch has the same size."""
    for n, drop_last in ((360, True), (365, True), (364, False), (17, False)):
        split = Split(torch.zeros(n, 1).numpy(), torch.arange(n).numpy())  # label = row index
        single = batches(make_loader(split, 8, drop_last=drop_last))
        zero, one = (
            batches(make_loader(split, 4, drop_last=drop_last, sampler=sampler))
            for sampler in (
                distributed.make_sampler(split, rank, 2, False, 0, drop_last) for rank in (0, 1)
            )
        )
        assert len(zero) == len(one) == len(single)
        for i in range(len(single)):
            assert len(zero[i]) == len(one[i])
            if drop_last or n % 2 == 0:  # else the sampler pads the last batch with a repeat
                assert sorted(zero[i] + one[i]) == single[i]


def test_two_processes_match_one_process_at_twice_the_batch(ddp_run, workspace, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    write_params(
        workspace / "single.yaml", with_train(DDP_PARAMS, strategy="single", batch_size=16)
    )
    single = Outputs(workspace / "one-process")
    train_stage.run(
        params=load_params(workspace / "single.yaml"),
        data_dir=workspace / "data",
        checkpoint_path=single.checkpoint,
        metrics_path=single.metrics,
        plots_dir=single.plots,
    )
    assert max_abs_difference(ddp_run.state(), single.state()) <= 1e-5
    ddp_losses, single_losses = ddp_run.losses(), single.losses()
    assert (
        [step for step, _ in ddp_losses]
        == [step for step, _ in single_losses]
        == list(range(STEPS))
    )
    for (_, ours), (_, theirs) in zip(ddp_losses, single_losses, strict=True):
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_a_ddp_training_is_one_mlflow_run(ddp_run, store):
    client = mlflow.MlflowClient(store)
    [only] = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert only.info.run_id == json.loads(ddp_run.metrics.read_text())["mlflow_run_id"]
    assert only.info.status == "FINISHED"
    history = client.get_metric_history(only.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(STEPS))  # one point per global step
    logged = {m.step: m.value for m in history}
    assert [logged[step] for step, _ in ddp_run.losses()] == [v for _, v in ddp_run.losses()]
    tags = only.data.tags
    assert (tags["world_size"], tags["backend"], tags["device"], tags["strategy"]) == (
        "2",
        "gloo",
        "cpu",
        "ddp",
    )
    assert only.data.params["train.batch_size"] == "8"
    assert len(client.get_metric_history(only.info.run_id, "val_loss")) == 2
    # Rank 0 samples its node, named as MLflow names nodes; the launcher, which waits, does not.
    node = f"system/{socket.gethostname()}/"
    system = [key for key in only.data.metrics if key.startswith("system/")]
    assert f"{node}cpu_utilization_percentage" in system
    assert all(key.startswith(node) for key in system if "peak_memory" not in key)


def test_the_checkpoint_is_the_unwrapped_module(ddp_run):
    state = ddp_run.state()
    assert not any(key.startswith("module.") for key in state)
    plain = NeuralNetwork(8, 3, (30, 20))
    plain.load_state_dict(state)  # strict: the same keys and shapes as a plain MLP
    model, _ = checkpoint.load(ddp_run.checkpoint)
    for ours, theirs in zip(model.state_dict().values(), state.values(), strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_rank_stops_the_whole_job_cleanly(failing, ddp_run, workspace, store):
    """The other rank fails too (its collective loses its peer); the first failure is named."""
    previous = Outputs(workspace / f"previous-{failing}")
    for path in (previous.checkpoint, previous.metrics, previous.plots / "loss.csv"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"from the previous successful run: {path.name}\n")
    before = {p: p.read_bytes() for p in previous.folder.rglob("*") if p.is_file()}

    started = time.monotonic()
    done = train(
        previous.args(workspace / "params.yaml", workspace / "data"),
        workspace,
        stage_env(store, experiment=f"failure-{failing}", PIPELINE_TEST_FAIL_RANK=str(failing)),
        timeout=120,
    )
    elapsed = time.monotonic() - started

    assert done.returncode == 1
    assert elapsed < 60
    last_line = done.stderr.strip().splitlines()[-1]
    note = f"rank {failing} failed (exit code 1): RuntimeError: PIPELINE_TEST_FAIL_RANK={failing}"
    assert last_line.startswith(f"error: training failed: {note}")
    assert processes_mentioning(str(previous.folder)) == []
    assert {p: p.read_bytes() for p in previous.folder.rglob("*") if p.is_file()} == before
    client = mlflow.MlflowClient(store)
    [only] = client.search_runs([client.get_experiment_by_name(f"failure-{failing}").experiment_id])
    assert only.info.status == "FAILED"
    assert only.data.tags["failed_rank"] == str(failing)
    assert only.data.tags["mlflow.note.content"].startswith(note)


def test_two_trainings_at_the_same_time_both_succeed(ddp_run, workspace):
    runs = [Outputs(workspace / f"concurrent-{i}") for i in (0, 1)]
    results: dict[int, subprocess.CompletedProcess] = {}

    def start(i: int) -> None:
        args = runs[i].args(workspace / "params.yaml", workspace / "data")
        results[i] = train(args, workspace, stage_env())

    threads = [threading.Thread(target=start, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in (0, 1):
        assert results[i].returncode == 0, results[i].stderr[-4000:]
        assert max_abs_difference(runs[i].state(), ddp_run.state()) == 0


def test_two_torchrun_nodes_match_the_single_node_run(ddp_run, workspace, store):
    """docs/gpu-ddp.md's two-machine commands, both on loopback: one worker per "node"."""
    outputs = Outputs(workspace / "two-nodes")
    command = [
        "torchrun",
        "--nnodes", "2",
        "--nproc-per-node", "1",
        "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
        "--rdzv-id", uuid.uuid4().hex,
        "--rdzv-conf", "join_timeout=60",
        "--max-restarts", "0",
        "-m", "pipeline.stages.train",
        *outputs.args(workspace / "params.yaml", workspace / "data"),
    ]  # fmt: skip
    env = stage_env(store, experiment="two-nodes")
    nodes = [
        subprocess.Popen(command, cwd=workspace, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [node.communicate(timeout=240)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(e[-3000:] for e in errors)

    assert max_abs_difference(outputs.state(), ddp_run.state()) <= 1e-6
    for (step, ours), (same_step, theirs) in zip(outputs.losses(), ddp_run.losses(), strict=True):
        assert step == same_step
        assert ours == pytest.approx(theirs, abs=1e-6)
    client = mlflow.MlflowClient(store)
    [only] = client.search_runs([client.get_experiment_by_name("two-nodes").experiment_id])
    assert only.info.status == "FINISHED"
    assert only.data.tags["world_size"] == "2"
    assert len(client.get_metric_history(only.info.run_id, "train_loss")) == STEPS


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("strategy", ["single", "ddp"])
def test_cuda_without_a_gpu_stops_before_anything_is_written(
    strategy, tmp_path, monkeypatch, capsys
):
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    write_params(tmp_path / "params.yaml", with_train(DDP_PARAMS, device="cuda", strategy=strategy))
    outputs = Outputs(tmp_path / "out")
    code = train_stage.main(outputs.args(tmp_path / "params.yaml", tmp_path / "data"))
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "error: train.device is 'cuda'; found no usable CUDA device: use train.device: cpu or auto"
    )
    assert not outputs.folder.exists()
    assert not store.exists()


def test_the_launch_plan_checks_gpus_before_anything_starts():
    assert distributed.plan_launch("auto", 2, found=0).tags() == {
        "device": "cpu", "backend": "gloo", "world_size": "2", "strategy": "ddp"
    }  # fmt: skip
    assert distributed.plan_launch("cuda", 2, found=2).tags()["backend"] == "nccl"
    assert distributed.plan_launch("auto", 4, found=4).device_type == "cuda"
    with pytest.raises(InputError) as error:
        distributed.plan_launch("cuda", 3, found=2)
    assert str(error.value) == (
        "train.nproc is 3 with NCCL (one process per GPU); found 2 usable CUDA device(s): "
        "expected at most 2, or train.device: cpu"
    )
    with pytest.raises(InputError, match="train.device is 'cuda:1' with train.strategy: ddp"):
        distributed.plan_launch("cuda:1", 2, found=2)


def test_ddp_outside_torchrun_points_to_the_launcher(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    refused = pytest.raises(InputError, match="not started by torchrun")
    with refused, distributed.setup("cpu", "ddp"):
        pass

"""CUDA: one GPU, NCCL DDP, and a GPU-trained model used on a CPU-only machine.

These skip on machines without CUDA; benchmarks/gpu_check.sh runs them on a GPU machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from distributed_helpers import (
    DDP_PARAMS,
    Outputs,
    make_data,
    max_abs_difference,
    stage_env,
    train,
    with_train,
)
from helpers import write_params

from pipeline.config.params import load_params
from pipeline.runtime import devices, distributed
from pipeline.stages import train as train_stage

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
needs_a_gpu = pytest.mark.skipif(GPUS < 1, reason="needs a CUDA GPU; none is usable here")
needs_two_gpus = pytest.mark.skipif(GPUS < 2, reason=f"needs 2 CUDA GPUs; found {GPUS}")


def train_here(folder, overrides, name: str) -> Outputs:
    """train.run in this process (strategy single), without tracking."""
    write_params(folder / f"{name}.yaml", overrides)
    outputs = Outputs(folder / name)
    train_stage.run(
        params=load_params(folder / f"{name}.yaml"),
        data_dir=folder / "data",
        checkpoint_path=outputs.checkpoint,
        metrics_path=outputs.metrics,
        plots_dir=outputs.plots,
    )
    return outputs


@needs_a_gpu
def test_one_gpu_trains_like_the_cpu_and_its_model_runs_without_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    single = with_train(DDP_PARAMS, strategy="single", batch_size=16)
    make_data(tmp_path, single)
    on_gpu = train_here(tmp_path, with_train(single, device="cuda"), "gpu")
    on_cpu = train_here(tmp_path, with_train(single, device="cpu"), "cpu")
    assert all(tensor.device.type == "cpu" for tensor in on_gpu.state().values())
    assert max_abs_difference(on_gpu.state(), on_cpu.state()) <= 1e-4

    # The GPU-trained model evaluates and predicts where no GPU is visible.
    cpu_only = stage_env(CUDA_VISIBLE_DEVICES="")
    probe = [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"]
    assert subprocess.run(probe, env=cpu_only, capture_output=True, text=True).stdout == "False\n"
    evaluate = [
        sys.executable, "-m", "pipeline.stages.evaluate",
        "--params", str(tmp_path / "gpu.yaml"),
        "--data", str(tmp_path / "data"),
        "--checkpoint", str(on_gpu.checkpoint),
        "--train-metrics", str(on_gpu.metrics),
        "--metrics", str(tmp_path / "eval.json"),
        "--plots", str(tmp_path / "eval-plots"),
    ]  # fmt: skip
    done = subprocess.run(evaluate, cwd=tmp_path, env=cpu_only, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["test_accuracy"] > 0.5
    (tmp_path / "points.csv").write_text("\n".join([",".join(["0.5"] * 8)] * 3) + "\n")
    predict = [
        sys.executable, "-m", "pipeline.predict",
        "--model", str(on_gpu.checkpoint), "--input", str(tmp_path / "points.csv"),
    ]  # fmt: skip
    done = subprocess.run(predict, cwd=tmp_path, env=cpu_only, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "prob_0,prob_1,prob_2,predicted"
    assert len(lines) == 4


@needs_two_gpus
def test_nccl_two_gpus_match_one_gpu_at_twice_the_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    ddp = with_train(DDP_PARAMS, device="cuda")
    make_data(tmp_path, ddp)
    ddp_outputs = Outputs(tmp_path / "nccl")
    args = ddp_outputs.args(tmp_path / "params.yaml", tmp_path / "data")
    done = train(args, tmp_path, stage_env())
    assert done.returncode == 0, done.stderr[-4000:]
    single = train_here(tmp_path, with_train(ddp, strategy="single", batch_size=16), "one-gpu")
    assert max_abs_difference(ddp_outputs.state(), single.state()) <= 1e-5
    for (step, ours), (same, theirs) in zip(ddp_outputs.losses(), single.losses(), strict=True):
        assert step == same
        assert ours == pytest.approx(theirs, abs=1e-5)


@needs_a_gpu
def test_more_processes_than_gpus_stop_before_anything_is_written(tmp_path, monkeypatch, capsys):
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    write_params(tmp_path / "params.yaml", with_train(DDP_PARAMS, device="cuda", nproc=GPUS + 1))
    outputs = Outputs(tmp_path / "out")
    assert train_stage.main(outputs.args(tmp_path / "params.yaml", tmp_path / "data")) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"error: train.nproc is {GPUS + 1} with NCCL (one process per GPU); found {GPUS} "
        f"usable CUDA device(s): expected at most {GPUS}, or train.device: cpu"
    )
    assert not outputs.folder.exists()
    assert not store.exists()


@needs_a_gpu
def test_auto_picks_the_gpu():
    assert devices.choose_device("auto").type == "cuda"
    assert distributed.plan_launch("auto", GPUS).tags()["backend"] == "nccl"

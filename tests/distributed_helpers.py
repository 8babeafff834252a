"""Helpers for the DDP tests: a tiny data set, the train stage as a real process, read-backs."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from helpers import ROOT, SMALL_PARAMS, clean_env, write_params

from pipeline.config.params import load_params
from pipeline.stages import generate

# 360 training rows: 22 batches of 16 for one process, 22 batches of 8 per rank for two.
DDP_PARAMS = {
    **SMALL_PARAMS,
    "train": {
        "epochs": 2,
        "batch_size": 8,
        "lr": 0.1,
        "shuffle": False,
        "drop_last": True,
        "device": "cpu",
        "strategy": "ddp",
        "nproc": 2,
    },
}
STEPS = 2 * 22


def with_train(overrides: dict, **train) -> dict:
    return {**overrides, "train": {**overrides["train"], **train}}


def make_data(folder: Path, overrides: dict) -> Path:
    """params.yaml and data/ for `overrides`, generated in this process."""
    folder.mkdir(parents=True, exist_ok=True)
    write_params(folder / "params.yaml", overrides)
    params = load_params(folder / "params.yaml")
    generate.run(data=params.data, seed=params.seed, out_dir=folder / "data")
    return folder


@dataclass(frozen=True)
class Outputs:
    """Where one training writes: the train stage's four output arguments."""

    folder: Path

    @property
    def checkpoint(self) -> Path:
        return self.folder / "models" / "checkpoint.pth"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics" / "train.json"

    @property
    def plots(self) -> Path:
        return self.folder / "plots"

    def args(self, params: Path, data: Path) -> list[str]:
        return [
            "--params",
            str(params),
            "--data",
            str(data),
            "--checkpoint",
            str(self.checkpoint),
            "--metrics",
            str(self.metrics),
            "--plots",
            str(self.plots),
        ]

    def state(self) -> dict[str, torch.Tensor]:
        return torch.load(self.checkpoint, weights_only=True)

    def losses(self) -> list[tuple[int, float]]:
        with open(self.plots / "loss.csv") as handle:
            return [(int(row["step"]), float(row["train_loss"])) for row in csv.DictReader(handle)]


def stage_env(store: str | None = None, experiment: str = "tests", **extra: str) -> dict:
    """The environment of a stage process: this checkout importable, tracking where asked."""
    env = clean_env(PYTHONPATH=str(ROOT), **extra)
    if store:
        env.update(MLFLOW_TRACKING_URI=store, MLFLOW_EXPERIMENT_NAME=experiment)
    else:
        env["PIPELINE_TRACKING"] = "0"
    return env


def train_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pipeline.stages.train", *args]


def train(args: list[str], cwd: Path, env: dict, timeout: float = 240):
    return subprocess.run(
        train_command(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def max_abs_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[key].float() - b[key].float()).abs().max().item() for key in a)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (a test's unique folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (proc / "status").read_text()
        except OSError:
            continue
        if text in cmdline and "\nState:\tZ" not in status:
            found.append(f"{proc.name}: {cmdline}")
    return found

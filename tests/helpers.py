"""Test helpers: the notebook's reference numbers, params files, subprocesses, project copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Printed by the notebook ("PyTorch in one hour", ../shared/seed/), training cell [57] and
# prediction cell [62]: seed 123, lr 0.5, 3 epochs, batch 2, shuffle and drop_last.
NOTEBOOK_LOSSES = [0.75, 0.65, 0.44, 0.13, 0.03, 0.00]
NOTEBOOK_PROBABILITIES = [
    [0.9991, 0.0009],
    [0.9982, 0.0018],
    [0.9949, 0.0051],
    [0.0491, 0.9509],
    [0.0307, 0.9693],
]
NOTEBOOK_PARAMS = {
    "seed": 123,
    "data": {"kind": "toy", "val_size": 0.0},
    "model": {"hidden": [30, 20]},
    "train": {
        "lr": 0.5,
        "epochs": 3,
        "batch_size": 2,
        "shuffle": True,
        "drop_last": True,
        "optimizer": "sgd",
        "device": "cpu",
        "strategy": "single",
    },
}
# Every file `dvc repro` produces (all DVC-cached: data, models, metrics and plots).
PIPELINE_OUTPUTS = (
    "data/params.ok",
    "data/train.npz",
    "data/val.npz",
    "data/test.npz",
    "models/checkpoint.pth",
    "models/checkpoint.json",
    "models/model.pth",
    "models/model.json",
    "metrics/train.json",
    "metrics/eval.json",
    "plots/loss.csv",
    "plots/loss.png",
    "plots/confusion.csv",
    "plots/confusion.png",
)
# A quick classification run for end-to-end tests: seconds, not minutes.
SMALL_PARAMS = {
    "seed": 7,
    "data": {
        "kind": "classification",
        "n_samples": 600,
        "n_features": 8,
        "n_classes": 3,
        "test_size": 0.25,
        "val_size": 0.2,
    },
    "train": {"epochs": 2, "batch_size": 16, "lr": 0.1, "device": "cpu"},
}


def write_params(path: Path, overrides: dict) -> None:
    """params.yaml = the project's defaults with `overrides` merged in."""
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, value in overrides.items():
        if isinstance(value, dict):
            base.setdefault(section, {}).update(value)
        else:
            base[section] = value
    path.write_text(yaml.safe_dump(base, sort_keys=False))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for stage processes: this interpreter first, the embedded store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.pop("PIPELINE_TRACKING", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "pipeline tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@example.invalid"
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True, timeout=600):
    done = subprocess.run(
        cmd, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {done.returncode}\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


def project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # A fresh project copy: DVC's outputs are git-ignored already, and a local dvc.lock or
    # stray metrics from an older layout never travel either.
    generated = ("metrics/", "plots/loss.csv", "plots/confusion.csv", "dvc.lock")
    return [f for f in listed if (ROOT / f).is_file() and not f.startswith(generated)]


def copy_project(repo: Path) -> Path:
    """The project's files in a fresh git repository at `repo`, as a user's clone would be."""
    for name in project_files():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    run(["git", "init", "-q", "-b", "main"], repo)
    commit_all(repo, "project copy")
    return repo


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)


def skip_without_postgres() -> None:
    """The team server's tests need PostgreSQL's binaries (and, as root, its account)."""
    import pwd

    import pytest

    from scripts import team_server

    if team_server.postgres_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); CI installs it")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root needs the `postgres` account that Debian's package adds")


def run_quick_benchmark(script: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python benchmarks/<script> --quick` as a user runs it (the tests that keep benchmarks
    from rotting); the caller asserts on its exit code and output."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )

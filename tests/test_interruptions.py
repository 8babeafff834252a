"""Interrupted training (issue 6 §3), with real signals to real processes.

SIGINT (Ctrl-C) or SIGTERM ends the MLflow run KILLED with the per-batch losses logged so far,
exits non-zero and changes no previous output; SIGKILL leaves no partial output. Run directly,
the previous outputs stay as they were; under `dvc repro`, DVC itself removes the stage's
outputs before it runs it, and `dvc checkout` brings them back (docs/troubleshooting.md).
"""

from __future__ import annotations

import os
import signal
import subprocess

import mlflow
import pytest
import yaml
from helpers import ROOT, SMALL_PARAMS, clean_env, commit_all, run, write_params

pytestmark = pytest.mark.e2e

# The train stage's command, as `dvc repro` runs it.
TRAIN = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["cmd"].split()
TRAIN_OUTPUTS = (
    "models/checkpoint.pth",
    "models/checkpoint.json",
    "metrics/train.json",
    "plots/loss.csv",
    "plots/loss.png",
)
OTHER_OUTPUTS = (
    "data/train.npz",
    "data/val.npz",
    "data/test.npz",
    "models/model.pth",
    "models/model.json",
    "metrics/eval.json",
    "plots/confusion.csv",
    "plots/confusion.png",
)
# SMALL_PARAMS trains 22 batches per epoch; six epochs leave time to interrupt the second.
LONGER = {**SMALL_PARAMS, "train": {**SMALL_PARAMS["train"], "epochs": 6}}
BATCHES_PER_EPOCH = 22
SECOND_EPOCH = "[EPOCH] 002/006"


def trained_project(project):
    """A project after a complete `dvc repro`, then params for a longer training."""
    write_params(project / "params.yaml", SMALL_PARAMS)
    commit_all(project, "small params")
    run(["dvc", "repro"], project)
    before = {name: (project / name).read_bytes() for name in TRAIN_OUTPUTS + OTHER_OUTPUTS}
    lock = (project / "dvc.lock").read_bytes()
    write_params(project / "params.yaml", LONGER)
    return before, lock


def interrupt(cmd: list[str], cwd, sig: signal.Signals) -> tuple[int, str]:
    """Start `cmd`, send `sig` to its process group (as Ctrl-C does) once it prints a batch
    line of the second epoch; return its exit status and everything it printed."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if line.startswith(SECOND_EPOCH):
            os.killpg(proc.pid, sig)
            break
    rest, _ = proc.communicate(timeout=300)
    return proc.returncode, "".join(printed) + rest


def newest_run(project):
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlp-pipeline")
    [latest, *_] = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])
    losses = client.get_metric_history(latest.info.run_id, "train_loss")
    return latest, sorted(m.step for m in losses)


def assert_killed_with_losses_so_far(project, printed: str) -> None:
    """The run is KILLED and holds every batch loss up to the interruption, in order."""
    latest, steps = newest_run(project)
    assert latest.info.status == "KILLED"
    # The signal came after batch 2 of epoch 2 was printed and before epoch 3 ended.
    assert BATCHES_PER_EPOCH + 2 <= len(steps) < 3 * BATCHES_PER_EPOCH, printed
    assert steps == list(range(len(steps)))


def assert_one_error_line(printed: str, message: str) -> None:
    assert "Traceback" not in printed
    errors = [line for line in printed.splitlines() if line.startswith("error: ")]
    assert errors == [message], printed


def leftovers(project) -> list[str]:
    """Temporary files of interrupted atomic writes."""
    return [str(p) for d in ("models", "metrics", "plots") for p in (project / d).glob(".*.tmp")]


def test_interrupted_train_leaves_previous_outputs_as_they_were(project):
    before, lock = trained_project(project)
    for sig, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        code, printed = interrupt(TRAIN, project, sig)
        assert code == status, printed
        if sig != signal.SIGKILL:  # SIGKILL cannot be handled: the run stays RUNNING
            assert_one_error_line(printed, f"error: training interrupted by {sig.name}")
            assert_killed_with_losses_so_far(project, printed)
        for name, content in before.items():
            assert (project / name).read_bytes() == content, (sig.name, name)
        assert (project / "dvc.lock").read_bytes() == lock
        assert leftovers(project) == []


def test_interrupted_dvc_repro_trains_again_and_checkout_restores(project):
    before, lock = trained_project(project)
    for sig in (signal.SIGINT, signal.SIGTERM):
        code, printed = interrupt(["dvc", "repro"], project, sig)
        assert code != 0, printed
        assert_one_error_line(printed, f"error: training interrupted by {sig.name}")
        assert_killed_with_losses_so_far(project, printed)
        # DVC removed train's outputs before running it; nothing else changed.
        for name in TRAIN_OUTPUTS:
            assert not (project / name).exists(), name
        for name in OTHER_OUTPUTS:
            assert (project / name).read_bytes() == before[name], name
        assert leftovers(project) == []
        # dvc.lock still describes the previous outputs; only validate's entry records that
        # the new params.yaml passed validation.
        lock_now = (project / "dvc.lock").read_bytes()
        old, new = (yaml.safe_load(text)["stages"] for text in (lock, lock_now))
        assert {k: v for k, v in new.items() if k != "validate"} == {
            k: v for k, v in old.items() if k != "validate"
        }

    # What docs/troubleshooting.md promises: `dvc checkout` restores what DVC removed, byte
    # for byte.
    run(["dvc", "checkout"], project)
    for name, content in before.items():
        assert (project / name).read_bytes() == content, name

    # The next `dvc repro` trains again, to the end.
    done = run(["dvc", "repro"], project)
    assert "Running stage 'train'" in done.stdout
    latest, steps = newest_run(project)
    assert latest.info.status == "FINISHED"
    assert steps == list(range(6 * BATCHES_PER_EPOCH))

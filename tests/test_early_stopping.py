"""train.early_stopping: the patience rule, the train stage's checkpoint against a plain run of the
same seed stopped at the best epoch, what train.json says, and a study's trial."""

from __future__ import annotations

import json
import math

import pytest
import torch
from distributed_helpers import DDP_PARAMS, Outputs, make_data, stage_env, with_train
from distributed_helpers import train as train_process
from helpers import SMALL_PARAMS, write_params

from pipeline.config.params import load_params
from pipeline.runtime.distributed import Runtime
from pipeline.search.trials import fit_trial, load_splits
from pipeline.stages import generate, train
from pipeline.training.early_stopping import EarlyStopping

# Adam at a high rate on 360 rows: val_loss turns up within a few epochs, so patience 2 stops
# well before the 40 epochs planned (the test asserts it did).
OVERFITTING = {"epochs": 40, "lr": 0.05, "optimizer": "adam", "batch_size": 16}


def losses_through(stopper: EarlyStopping, losses: list[float]) -> int:
    """Feed val losses until the stopper says stop; the number of epochs it took."""
    model = torch.nn.Linear(1, 1)
    for epoch, loss in enumerate(losses):
        stopper.update(epoch, loss, model)
        if stopper.should_stop:
            return epoch + 1
    return len(losses)


def test_patience_counts_epochs_without_a_strictly_lower_val_loss():
    stopper = EarlyStopping(patience=2)
    # Best at epoch 1 (0-based); 0.5 again is no improvement, nor is NaN: 2 epochs later, stop
    # (before the 0.1 it would have reached).
    assert losses_through(stopper, [0.9, 0.5, 0.5, float("nan"), 0.1]) == 4
    assert stopper.best_epoch == 1 and stopper.summary() == {"best_epoch": 2, "epochs_trained": 4}
    never = EarlyStopping(patience=3)
    assert losses_through(never, [float("nan")] * 5) == 3  # stops, with no best to restore
    assert never.best_state is None and "best_epoch" not in never.summary()


def test_the_best_state_is_a_copy_and_restore_puts_it_back():
    model = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=1)
    stopper.update(0, 1.0, model)
    kept = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)  # what the next optimizer step does to the same tensor
    stopper.update(1, 2.0, model)  # worse: not kept
    stopper.restore(model)
    assert torch.equal(model.weight, kept)


def _train(tmp_path, name: str, **train_overrides) -> tuple[dict, dict]:
    """The train stage on the SMALL_PARAMS splits in tmp_path/data: (train.json, state_dict)."""
    params_path = tmp_path / f"{name}.yaml"
    train_params = {**SMALL_PARAMS["train"], **OVERFITTING, **train_overrides}
    write_params(params_path, {**SMALL_PARAMS, "train": train_params})
    out = tmp_path / name
    train.run(
        params=load_params(params_path),
        data_dir=tmp_path / "data",
        checkpoint_path=out / "checkpoint.pth",
        metrics_path=out / "train.json",
        plots_dir=out,
    )
    state = torch.load(out / "checkpoint.pth", weights_only=True)
    return json.loads((out / "train.json").read_text()), state


@pytest.fixture
def splits(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    write_params(tmp_path / "params.yaml", SMALL_PARAMS)
    args = ["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "data")]
    assert generate.main(args) == 0
    return tmp_path


def test_the_checkpoint_is_the_best_epoch_of_a_plain_run_with_the_same_seed(splits):
    stopped, state = _train(splits, "stopped", early_stopping=2)
    best, trained = stopped["best_epoch"], stopped["epochs_trained"]
    # It did stop early, patience epochs after its best one.
    assert trained < OVERFITTING["epochs"] and trained == best + 2
    # A plain run of `best` epochs takes the same steps: its weights are the best epoch's.
    plain, plain_state = _train(splits, "plain", epochs=best)
    assert state.keys() == plain_state.keys()
    for key in state:
        assert torch.equal(state[key], plain_state[key]), key
    # train.json's validation figures are the checkpoint's, not the last epoch's.
    assert math.isclose(stopped["val_loss"], plain["val_loss"], rel_tol=1e-6)
    assert stopped["val_accuracy"] == plain["val_accuracy"]
    assert "best_epoch" not in plain  # off: train.json as before


def test_a_trial_stops_and_scores_its_best_epoch(splits):
    write_params(
        splits / "trial.yaml",
        {**SMALL_PARAMS, "train": {**SMALL_PARAMS["train"], **OVERFITTING, "early_stopping": 2}},
    )
    params = load_params(splits / "trial.yaml")
    train_split, val_split = load_splits(splits / "data")
    seen: list[tuple[int, float, float]] = []
    score = fit_trial(
        params=params,
        train_split=train_split,
        val_split=val_split,
        device=torch.device("cpu"),
        on_validation=lambda epoch, loss, accuracy: seen.append((epoch, loss, accuracy)),
    )
    best = min(seen, key=lambda row: row[1])
    assert len(seen) < OVERFITTING["epochs"] and seen[-1][0] == best[0] + 2
    assert score == (best[1], best[2])


def test_decided_by_main_is_the_flag_itself_in_one_process():
    # Under DDP it broadcasts rank 0's flag (tests/test_distributed.py runs real workers).
    runtime = Runtime(torch.device("cpu"))
    assert runtime.decided_by_main(True) is True
    assert runtime.decided_by_main(False) is False


def test_ddp_ranks_stop_together_at_the_single_process_epoch(tmp_path, monkeypatch):
    """Two gloo workers (batch 8 each) against one process at batch 16, as test_distributed.py
    compares them: the same stop, the same best epoch, the same checkpoint. Without the stop
    reaching every rank, rank 1 would train on while rank 0 waits, and the job would hang."""
    overrides = with_train(DDP_PARAMS, **{**OVERFITTING, "batch_size": 8}, early_stopping=2)
    workspace = make_data(tmp_path, overrides)
    ddp = Outputs(workspace / "ddp")
    done = train_process(
        ddp.args(workspace / "params.yaml", workspace / "data"), workspace, stage_env()
    )
    assert done.returncode == 0, done.stderr[-4000:]
    write_params(workspace / "single.yaml", with_train(overrides, strategy="single", batch_size=16))
    single = Outputs(workspace / "single")
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    train.run(
        params=load_params(workspace / "single.yaml"),
        data_dir=workspace / "data",
        checkpoint_path=single.checkpoint,
        metrics_path=single.metrics,
        plots_dir=single.plots,
    )
    ddp_json, single_json = (json.loads(o.metrics.read_text()) for o in (ddp, single))
    assert ddp_json["epochs_trained"] < OVERFITTING["epochs"]
    assert (ddp_json["best_epoch"], ddp_json["epochs_trained"]) == (
        single_json["best_epoch"],
        single_json["epochs_trained"],
    )
    ddp_state, single_state = ddp.state(), single.state()
    assert ddp_state.keys() == single_state.keys()
    assert all(torch.allclose(ddp_state[k], single_state[k], atol=1e-4) for k in ddp_state)

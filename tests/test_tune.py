"""Studies in-process: trials equal the train stage, MLflow shows the study, pruning, failures,
the sampler's seed, the way back to DVC's `-S` syntax. Read back from Optuna's real SQLite
storage and a real MLflow store."""

from __future__ import annotations

import math

import mlflow
import pytest
import yaml
from helpers import ROOT
from optuna.trial import TrialState
from tune_helpers import load_study, make_workspace, study_runs, tune_args

from pipeline import tune
from pipeline.config.params import load_params, read_yaml, with_values
from pipeline.config.schema import Params
from pipeline.process.errors import InputError
from pipeline.search import study as search_study
from pipeline.search.space import Choice, Range, load_space
from pipeline.search.to_dvc import dvc_exp_run, yaml_value
from pipeline.stages import train

CONFIGURATION = {
    "train.lr": 0.05,
    "train.batch_size": 32,
    "train.optimizer": "adam",
    "model.hidden": [16, 8],
}


def enqueue_file(workspace, *rows: dict):
    """Configurations for --enqueue: CONFIGURATION with each row's changes (none: itself)."""
    path = workspace / "fixed.yaml"
    path.write_text(yaml.safe_dump([{**CONFIGURATION, **row} for row in rows or ({},)]))
    return str(path)


def test_a_trial_gives_what_the_train_stage_gives(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    workspace = make_workspace(tmp_path / "w", epochs=3)
    assert (
        tune.main(tune_args(workspace, "--trials", "1", "--enqueue", enqueue_file(workspace))) == 0
    )
    trial = load_study(workspace).trials[0]
    assert trial.params["train.lr"] == 0.05 and trial.state == TrialState.COMPLETE

    params = with_values(load_params(workspace / "params.yaml"), CONFIGURATION, source="test")
    summary = train.run(
        params=params,
        data_dir=workspace / "data",
        checkpoint_path=tmp_path / "out" / "checkpoint.pth",
        metrics_path=tmp_path / "out" / "train.json",
        plots_dir=tmp_path / "out",
    )
    assert math.isclose(trial.value, summary["val_accuracy"], abs_tol=1e-6)
    assert math.isclose(trial.user_attrs["val_loss"], summary["val_loss"], abs_tol=1e-6)
    assert len(trial.intermediate_values) == 3


def test_the_study_in_mlflow_parent_and_nested_trials(tmp_path, sqlite_store, capsys):
    workspace = make_workspace(tmp_path / "w")
    assert tune.main(tune_args(workspace, "--trials", "3")) == 0
    study = load_study(workspace)
    assert "study 't': 3 trials (3 complete)" in capsys.readouterr().out

    (parent,), children = study_runs(sqlite_store)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "t"
    assert parent.data.tags["study.name"] == "t"
    assert parent.data.params["space.train.lr"] == "float [0.001, 1.0] log"
    assert parent.data.params["space.model.hidden"] == 'choices ["[8]", "[16, 8]"]'
    client = mlflow.MlflowClient(sqlite_store)
    best = max(t.value for t in study.trials)
    assert client.get_metric_history(parent.info.run_id, "best_val_accuracy")[-1].value == best
    pictures = {a.path for a in client.list_artifacts(parent.info.run_id, "study")}
    assert pictures == {"study/optimization_history.png", "study/param_importances.png"}

    assert sorted(int(c.data.tags["trial.number"]) for c in children) == [0, 1, 2]
    for child in children:
        trial = study.trials[int(child.data.tags["trial.number"])]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert (child.data.tags["trial.state"], child.info.status) == ("COMPLETE", "FINISHED")
        assert float(child.data.params["train.lr"]) == trial.params["train.lr"]
        assert child.data.params["data.n_samples"] == "600"  # every key, as a training's run
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [(m.step, m.value) for m in history] == sorted(trial.intermediate_values.items())


# lr 1e6 and 1e-5 lie outside the space: Optuna warns, and tries them as enqueued.
@pytest.mark.filterwarnings("ignore:Fixed parameter")
def test_pruned_and_diverging_trials_are_recorded_and_the_study_goes_on(
    tmp_path, sqlite_store, capsys
):
    workspace = make_workspace(tmp_path / "w", epochs=4, startup_trials=1)
    fixed = enqueue_file(
        workspace,
        {"train.optimizer": "sgd", "train.lr": 0.1},  # learns
        {"train.optimizer": "sgd", "train.lr": 1e6},  # NaN loss in its first epoch
        {"train.optimizer": "sgd", "train.lr": 1e-5},  # barely moves: below the median
        {"train.optimizer": "sgd", "train.lr": 0.2},
    )
    assert tune.main(tune_args(workspace, "--trials", "4", "--enqueue", fixed)) == 0
    study = load_study(workspace)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED, TrialState.COMPLETE]
    assert len(study.trials[2].intermediate_values) < 4
    trained, planned = search_study.epochs_saved_by_pruning(study)
    assert planned == 12 and trained < planned
    out = capsys.readouterr().out
    assert "trial 1: fail (Diverged: training loss is nan in epoch 1)" in out
    # The pruned trial's last reported figure, rounded as every printed figure is.
    pruned = study.trials[2]
    last_epoch = max(pruned.intermediate_values)
    note = f"pruned after epoch {last_epoch + 1}: val_accuracy "
    assert f"trial 2: pruned ({note}{pruned.intermediate_values[last_epoch]:.4f})" in out

    _, children = study_runs(sqlite_store)
    by_number = {int(c.data.tags["trial.number"]): c for c in children}
    expected = ["COMPLETE/FINISHED", "FAIL/FAILED", "PRUNED/FINISHED", "COMPLETE/FINISHED"]
    got = [f"{by_number[n].data.tags['trial.state']}/{by_number[n].info.status}" for n in range(4)]
    assert got == expected
    assert "Diverged" in by_number[1].data.tags["mlflow.note.content"]


def test_the_seed_proposes_the_same_configurations_and_reruns_add_trials(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    first, second = make_workspace(tmp_path / "a"), make_workspace(tmp_path / "b")
    for workspace in (first, second):
        assert tune.main(tune_args(workspace, "--trials", "3")) == 0
    proposed = [[t.params for t in load_study(w).trials] for w in (first, second)]
    assert proposed[0] == proposed[1]
    assert len({str(p) for p in proposed[0]}) == 3

    assert tune.main(tune_args(first, "--trials", "2")) == 0
    resumed = load_study(first).trials
    assert [t.number for t in resumed] == [0, 1, 2, 3, 4]
    assert [t.params for t in resumed[:3]] == proposed[0]
    # The resumed sampler goes on from a seed of its own, rather than repeating trial 0.
    assert resumed[3].params != resumed[0].params


def test_best_prints_the_dvc_command_of_the_best_trial(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    workspace = make_workspace(tmp_path / "w")
    assert tune.main(tune_args(workspace, "--trials", "3")) == 0
    capsys.readouterr()
    assert tune.main(tune_args(workspace, "--best")) == 0
    out = capsys.readouterr().out.splitlines()
    study = load_study(workspace)
    best = max(study.trials, key=lambda t: (t.value, -t.user_attrs["val_loss"]))
    assert out[0].startswith(f"best trial {best.number}: val_accuracy {best.value:.4f}")
    assert f"-n t-trial-{best.number} -S train.lr={best.params['train.lr']!r}" in out[-1]
    assert out[-1].startswith(f"PIPELINE_TRIAL={best.number} dvc exp run")  # tracking was off


@pytest.mark.parametrize("value", [1e-05, 0.1, 123.0, 2.5e-12, True, "adam", 32, [16, 8]])
def test_set_values_read_back_as_params_yaml_reads_them(tmp_path, value):
    """What `dvc exp run -S key=<text>` writes into params.yaml is the trial's value again."""
    path = tmp_path / "x.yaml"
    path.write_text(f"key: {yaml_value(value)}\n")
    assert read_yaml(path, expected="a value") == {"key": value}


def test_the_command_names_the_trial_and_carries_the_link():
    attrs = {"mlflow_parent_run_id": "p" * 32, "mlflow_run_id": "c" * 32}
    command, link = dvc_exp_run("my study", 7, {"model.hidden": [16, 8]}, attrs)
    assert command == ["dvc", "exp", "run", "-n", "my-study-trial-7", "-S", "model.hidden=[16, 8]"]
    assert link == {
        "PIPELINE_STUDY_RUN": "p" * 32,
        "PIPELINE_TRIAL": "7",
        "PIPELINE_TRIAL_RUN": "c" * 32,
    }


def test_the_projects_space_tunes_dropout_weight_decay_and_early_stopping():
    config = load_space(ROOT / "tune.yaml", load_params(ROOT / "params.yaml"))
    entries = {entry.key: entry for entry in config.space}
    assert isinstance(entries["model.dropout"], Range) and not entries["model.dropout"].whole
    assert 0.0 in entries["train.weight_decay"].choices
    assert isinstance(entries["train.early_stopping"], Choice)
    assert 0 in entries["train.early_stopping"].choices


def test_the_table_space_always_stops_early_and_leaves_the_optimizer_to_params():
    # tune-table.yaml (docs/own-data.md): every trial scores its best epoch, adam comes from the
    # table settings, and its study is not tune.yaml's (one storage can hold both).
    config = load_space(ROOT / "tune-table.yaml", load_params(ROOT / "params.yaml"))
    entries = {entry.key: entry for entry in config.space}
    assert 0 not in entries["train.early_stopping"].choices
    assert "train.optimizer" not in entries and entries["train.lr"].high <= 0.03
    assert config.name != load_space(ROOT / "tune.yaml", Params()).name


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("model.dropout: {low: 0.0, high: 1.0}", "model.dropout is 1.0"),
        ("train.weight_decay: {choices: [0.0, -0.01]}", "train.weight_decay is -0.01"),
        ("train.early_stopping: {low: 0, high: 2.5}", "bound is 2.5; expected whole numbers"),
    ],
)
def test_the_space_refuses_bad_bounds_of_the_new_keys(tmp_path, entry, fragment):
    path = tmp_path / "tune.yaml"
    path.write_text(
        "study: {name: t, seed: 1, pruner_startup_trials: 1, pruner_warmup_epochs: 0}\n"
        f"space:\n  {entry}\n"
    )
    with pytest.raises(InputError, match=fragment):
        load_space(path, Params())


def test_repeats_score_a_trial_by_the_mean_of_what_the_train_stage_gives(tmp_path, monkeypatch):
    """--repeats 3: three training seeds (train.seed, +1, +2) of one configuration, each what the
    train stage trains for that train.seed (with early stopping: the best epoch's figures)."""
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    workspace = make_workspace(tmp_path / "w", epochs=3)
    early = {"train.early_stopping": 1}
    fixed = enqueue_file(workspace)
    params_path = workspace / "params.yaml"
    params_path.write_text(
        params_path.read_text().replace("early_stopping: 0", "early_stopping: 1")
    )
    args = tune_args(workspace, "--trials", "1", "--enqueue", fixed, "--repeats", "3")
    assert tune.main(args) == 0
    trial = load_study(workspace).trials[0]
    base = with_values(load_params(params_path), {**CONFIGURATION, **early}, source="test")
    assert trial.user_attrs["train_seeds"] == [base.seed, base.seed + 1, base.seed + 2]
    figures = []
    for seed in trial.user_attrs["train_seeds"]:
        summary = train.run(
            params=with_values(base, {"train.seed": seed}, source="test"),
            data_dir=workspace / "data",
            checkpoint_path=tmp_path / str(seed) / "checkpoint.pth",
            metrics_path=tmp_path / str(seed) / "train.json",
            plots_dir=tmp_path / str(seed),
        )
        figures.append((summary["val_accuracy"], summary["val_loss"]))
    accuracies = [accuracy for accuracy, _ in figures]
    assert trial.user_attrs["val_accuracies"] == pytest.approx(accuracies, abs=1e-6)
    assert trial.value == pytest.approx(sum(accuracies) / 3, abs=1e-6)
    losses = [loss for _, loss in figures]
    assert trial.user_attrs["val_loss"] == pytest.approx(sum(losses) / 3, abs=1e-6)
    # Pruning saw the running mean at steps that follow on across the seeds (3 epochs each).
    steps = sorted(trial.intermediate_values)
    assert steps[0] == 0 and 2 * 3 <= steps[-1] < 9 and trial.user_attrs["epochs_planned"] == 9


def test_best_queues_the_same_seeds_and_a_study_keeps_its_repeats(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_TRACKING", "0")
    workspace = make_workspace(tmp_path / "w", epochs=1)
    args = tune_args(workspace, "--trials", "1", "--repeats", "2")
    assert tune.main(args) == 0
    capsys.readouterr()
    assert tune.main(tune_args(workspace, "--best")) == 0
    queue, run_all = capsys.readouterr().out.splitlines()[-2:]
    seed = load_params(workspace / "params.yaml").seed
    assert f"dvc exp run --queue -n t-trial-0 -S train.seed={seed},{seed + 1} -S " in queue
    assert run_all.endswith("dvc exp run --run-all")
    assert tune.main(tune_args(workspace, "--trials", "1", "--repeats", "3")) == 2
    assert "--repeats is 3 but study 't' scores trials over 2 seed(s)" in capsys.readouterr().err


def test_repeats_below_one_are_refused(capsys):
    assert tune.main(["--trials", "1", "--repeats", "0"]) == 2
    assert capsys.readouterr().err == ("error: --repeats is 0; expected 1 or more training seeds\n")

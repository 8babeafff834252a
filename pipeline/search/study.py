"""The Optuna study: opened or created, trials asked, fitted and told, the best one chosen.

Trials train in this process on the pipeline's own splits (no process start-up per trial) and are
scored on validation accuracy (ties: validation loss); a median pruner stops unpromising ones.
The study lives in Optuna's RDB storage (a SQLite file beside the MLflow store by default, or
PostgreSQL), so reruns and other processes with the same name and storage add to one study.
Every store call is made with interruptions held (pipeline.process.signals)."""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from pipeline.config.params import read_yaml, with_values
from pipeline.config.schema import Params
from pipeline.process.errors import InputError, first_line
from pipeline.process.signals import held
from pipeline.runtime.devices import choose_device
from pipeline.runtime.threads import one_thread_per_worker
from pipeline.search.space import Choice, StudyConfig
from pipeline.search.storage import missing_sqlite_file
from pipeline.search.trials import fit_repeats, repeat_seeds
from pipeline.tracking.store.urls import shown


def open_study(*, storage: str, name: str, config: StudyConfig, create: bool) -> optuna.Study:
    """The study of this name, created on first use; its sampler is seeded from the study's seed
    plus the trials it holds, so a resumed single-worker study goes on rather than repeats."""
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=config.pruner_startup_trials, n_warmup_steps=config.pruner_warmup_epochs
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial prints its own line
    missing = missing_sqlite_file(storage)
    if not create and missing:
        # Opening would create an empty storage file just to find no study in it.
        raise InputError(f"study {name!r}: not found in {storage} ({missing} does not exist)")
    try:
        study = _create_or_load(storage, name, create)
    except KeyError:
        raise InputError(
            f"study {name!r}: not found in {shown(storage)}; run a study first"
        ) from None
    except Exception as exc:  # SQLAlchemy and driver errors of every kind: one line, exit 2
        reason = first_line(exc, limit=200)
        raise InputError(
            f"--storage {shown(storage)}: cannot open ({reason}); "
            "expected sqlite:///path or postgresql://user:password@host:port/database"
        ) from None
    study.sampler = optuna.samplers.TPESampler(seed=config.seed + len(study.trials))
    study.pruner = pruner
    return study


# Workers that start together on a fresh database race to create Optuna's tables and to stamp
# its schema version, and the losers fail ('type "studydirection" already exists', a unique
# violation in pg_type or alembic_version): they try again, and then find the tables there.
CREATION_ATTEMPTS = 4


LOST_CREATION_RACE = ("already exists", "pg_type_typname_nsp_index", "alembic_version")


def _create_or_load(storage: str, name: str, create: bool) -> optuna.Study:
    attempt = 1
    while True:
        try:
            if not create:
                return optuna.load_study(storage=storage, study_name=name)
            return optuna.create_study(
                storage=storage, study_name=name, direction="maximize", load_if_exists=True
            )
        except Exception as exc:
            if attempt == CREATION_ATTEMPTS or not any(m in str(exc) for m in LOST_CREATION_RACE):
                raise
        time.sleep(0.2 * attempt)
        attempt += 1


def suggest(trial: optuna.Trial, config: StudyConfig) -> dict[str, Any]:
    """One value per space entry; lists (model.hidden) are stored as JSON text in Optuna."""
    values = {}
    for entry in config.space:
        if isinstance(entry, Choice):
            labels = [choice_label(choice) for choice in entry.choices]
            values[entry.key] = choice_value(trial.suggest_categorical(entry.key, labels))
        elif entry.whole:
            values[entry.key] = trial.suggest_int(entry.key, entry.low, entry.high, log=entry.log)
        else:
            values[entry.key] = trial.suggest_float(entry.key, entry.low, entry.high, log=entry.log)
    return values


def choice_label(choice: Any) -> Any:
    return json.dumps(list(choice)) if isinstance(choice, tuple | list) else choice


def choice_value(label: Any) -> Any:
    return json.loads(label) if isinstance(label, str) and label.startswith("[") else label


def run_trials(
    *, study, config, base: Params, splits: tuple, n_trials: int, study_run, repeats: int = 1
) -> None:
    """Add n_trials to the study, each trained over `repeats` training seeds and scored by their
    mean; splits: (train, val) as load_splits gives them."""
    device = choose_device(base.train.device)
    one_thread_per_worker(device)
    # Every store call below is made with interruptions held (pipeline.process.signals): only the
    # training in between is cut short by Ctrl-C or SIGTERM.
    for _ in range(n_trials):
        with held():
            trial = study.ask()
        try:
            settings = (config, base, repeats)
            state = _set_up_and_run(study, trial, settings, splits, device, study_run)
        except BaseException:
            # Bad params, an interruption or a store error between trials: never left RUNNING.
            with held():
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        if state == TrialState.COMPLETE:
            with held():
                study_run.log_best(best_trial(study).value, step=trial.number)


def _set_up_and_run(study, trial, settings, splits, device, study_run) -> TrialState:
    config, base, repeats = settings
    params, trial_run = _set_up(trial, config, base, study_run, repeats)
    return _run_one(
        study,
        trial,
        trial_run,
        params=params,
        seeds=repeat_seeds(params, repeats),
        device=device,
        train_split=splits[0],
        val_split=splits[1],
    )


@held()
def _set_up(trial, config, base, study_run, repeats: int):
    params = with_values(base, suggest(trial, config), source=f"trial {trial.number}")
    trial_run = study_run.trial(trial.number, params.flat())
    trial.set_user_attr("mlflow_run_id", trial_run.run_id)
    trial.set_user_attr("mlflow_parent_run_id", study_run.run_id)
    trial.set_user_attr("epochs_planned", params.train.epochs * repeats)
    trial.set_user_attr("train_seeds", repeat_seeds(params, repeats))
    return params, trial_run


def _run_one(study, trial, trial_run, **fit_args) -> TrialState:
    """Fit one trial and tell Optuna and MLflow how it ended; only an interruption escapes."""

    @held()
    def on_validation(epoch: int, val_loss: float, val_accuracy: float) -> None:
        trial_run.log_validation(epoch, val_loss, val_accuracy)
        trial.report(val_accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(pruned_note(epoch, val_accuracy))

    try:
        val_loss, val_accuracy, each = fit_repeats(on_validation=on_validation, **fit_args)
    except optuna.TrialPruned as pruned:
        return _end(study, trial, trial_run, TrialState.PRUNED, str(pruned))
    except KeyboardInterrupt:
        _end(study, trial, trial_run, TrialState.FAIL, "interrupted", interrupted=True)
        raise
    except Exception as exc:  # Diverged (NaN loss) or any error: the study goes on
        return _end(study, trial, trial_run, TrialState.FAIL, f"{type(exc).__name__}: {exc}")
    return _complete(study, trial, trial_run, val_loss, val_accuracy, each)


@held()
def _complete(study, trial, trial_run, val_loss: float, val_accuracy: float, each) -> TrialState:
    trial.set_user_attr("val_loss", val_loss)
    if len(each) > 1:
        trial.set_user_attr("val_accuracies", each)
    study.tell(trial, val_accuracy)
    trial_run.end("COMPLETE")
    seeds = f" (mean of {len(each)} seeds)" if len(each) > 1 else ""
    print(f"trial {trial.number}: val_accuracy {val_accuracy:.4f} val_loss {val_loss:.4f}{seeds}")
    return TrialState.COMPLETE


@held()
def _end(study, trial, trial_run, state: TrialState, note: str, interrupted=False) -> TrialState:
    study.tell(trial, state=state)
    trial_run.end(state.name, interrupted=interrupted, note=note)
    print(f"trial {trial.number}: {state.name.lower()} ({note})")
    return state


def pruned_note(epoch: int, val_accuracy: float) -> str:
    """Why a trial stopped, with the figure rounded as every other printed figure is."""
    return f"pruned after epoch {epoch + 1}: val_accuracy {val_accuracy:.4f}"


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """Highest validation accuracy; among equals, the lowest validation loss."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise InputError(f"study {study.study_name!r}: no completed trial yet; run more trials")
    return max(complete, key=lambda t: (t.value, -t.user_attrs.get("val_loss", float("inf"))))


def epochs_saved_by_pruning(study: optuna.Study) -> tuple[int, int]:
    """(epochs trained, epochs the finished and pruned trials would have trained unpruned)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    trained = sum(len(t.intermediate_values) for t in done)
    return trained, sum(t.user_attrs.get("epochs_planned", 0) for t in done)


def log_pictures(study: optuna.Study, study_run) -> None:
    """The optimization history and, once two trials have finished, the params' importances."""
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete or study_run.run_id is None:
        return
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        pictures = {"optimization_history.png": plots.plot_optimization_history(study)}
        if len(complete) >= 2:
            pictures["param_importances.png"] = plots.plot_param_importances(study)
        paths = []
        for name, axes in pictures.items():
            paths.append(Path(tmp) / name)
            axes.figure.savefig(paths[-1], bbox_inches="tight")
        study_run.log_files(paths, "study")


def enqueue(study: optuna.Study, config: StudyConfig, base: Params, path: Path) -> int:
    """Configurations to try first (a YAML list of {key: value}), each validated."""
    rows = read_yaml(path, expected="a list of configurations ({params key: value})")
    keys = {entry.key for entry in config.space}
    if (
        not rows
        or not isinstance(rows, list)
        or not all(isinstance(r, dict) and set(r) == keys for r in rows)
    ):
        raise InputError(
            f"{path}: holds {rows!r}; expected a non-empty list of mappings with the keys "
            f"{', '.join(sorted(keys))}"
        )
    for number, row in enumerate(rows):
        with_values(base, row, source=f"{path}: configuration {number + 1}")
        study.enqueue_trial({key: choice_label(value) for key, value in row.items()})
    return len(rows)


def summary(study: optuna.Study) -> str:
    counts = {state: len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    parts = [f"{counts[s]} {s.name.lower()}" for s in TrialState if counts[s]]
    return f"study {study.study_name!r}: {len(study.trials)} trials ({', '.join(parts)})"

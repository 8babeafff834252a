"""`python -m pipeline.tune`: search hyperparameters with an Optuna study (pipeline/search/).

`--trials N` adds N trials to the study (pipeline.search.study), `--best` prints the
`dvc exp run` that trains the best trial as a DVC experiment, `--apply` runs it. MLflow shows one
parent run per invocation and a nested run per trial (pipeline.tracking.study).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import optuna

from pipeline.config.params import load_params
from pipeline.config.schema import Params
from pipeline.process.errors import InputError, exits_cleanly
from pipeline.process.lifeline import popen_tied
from pipeline.process.signals import held, interrupted_exit
from pipeline.search.space import DEFAULT_PATH, Choice, StudyConfig, load_space
from pipeline.search.storage import storage_url
from pipeline.search.study import (
    best_trial,
    choice_label,
    choice_value,
    enqueue,
    log_pictures,
    open_study,
    run_trials,
    summary,
)
from pipeline.search.to_dvc import RUN_QUEUED, dvc_exp_run, format_best
from pipeline.search.trials import load_splits
from pipeline.tracking.runs import run_status
from pipeline.tracking.store.urls import shown
from pipeline.tracking.study import start_study_run


def print_best(study: optuna.Study, config: StudyConfig) -> tuple[list[list[str]], dict[str, str]]:
    """The best trial's params and the `dvc exp run` that trains it (a trial of several seeds:
    the queued sweep over them, then the run of the queue); returns those commands."""
    best = best_trial(study)
    values = {entry.key: choice_value(best.params[entry.key]) for entry in config.space}
    command, link = dvc_exp_run(study.study_name, best.number, values, best.user_attrs)
    print(format_best(best.number, best.value, best.user_attrs.get("val_loss"), values))
    commands = [command, RUN_QUEUED] if "--queue" in command else [command]
    for each in commands:
        print(shlex.join([*(f"{k}={v}" for k, v in link.items()), *each]))
    return commands, link


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=0, help="trials this process adds")
    parser.add_argument("--storage", help="Optuna RDB URL (default: sqlite:///<repo>/optuna.db)")
    parser.add_argument("--study", help="study name (default: study.name in the space file)")
    parser.add_argument("--space", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--enqueue", type=Path, help="YAML list of configurations to try first")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="training seeds per trial (train.seed, +1, ...); the objective is their mean",
    )
    parser.add_argument("--best", action="store_true", help="print the best trial's dvc command")
    parser.add_argument("--apply", action="store_true", help="run that command")
    args = parser.parse_args(argv)
    if args.trials < 0 or not (args.trials or args.best or args.apply):
        raise InputError(f"--trials is {args.trials}; expected 1 or more (or --best, --apply)")
    if args.repeats < 1:
        raise InputError(f"--repeats is {args.repeats}; expected 1 or more training seeds")
    base = load_params(args.params)
    if base.train.strategy != "single":
        raise InputError(
            f"{args.params}: train.strategy is {base.train.strategy!r}; expected 'single' "
            "(trials train in the tuning process)"
        )
    config = load_space(args.space, base)
    # Bad data stops here, before the study or its MLflow run exists.
    splits = load_splits(args.data) if args.trials else None
    name, storage = args.study or config.name, storage_url(args.storage)
    study = open_study(storage=storage, name=name, config=config, create=bool(args.trials))
    if args.trials:
        code = _optimize(study, config, base, splits, args)
        if code:
            return code
    if args.best or args.apply:
        commands, link = print_best(study, config)
        for command in commands if args.apply else []:
            code = _run_tied(command, env={**os.environ, **link})
            if code:
                return code
    return 0


def _run_tied(command: list[str], env: dict[str, str]) -> int:
    """Run `dvc exp run` so that it ends with this process however this one ends (it runs in a
    session of its own, so a Ctrl-C here is passed on)."""
    process = popen_tied(command, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait()
        raise


def _optimize(study, config: StudyConfig, base: Params, splits: tuple, args) -> int:
    _same_repeats(study, args.repeats)
    if args.enqueue:
        enqueue(study, config, base, args.enqueue)
    settings = {"study.name": study.study_name, "study.storage": shown(storage_url(args.storage))}
    settings["study.repeats"] = args.repeats
    settings |= {f"space.{e.key}": _describe(e) for e in config.space}
    study_run = start_study_run(study.study_name, settings)
    try:
        with run_status(study_run):
            run_trials(
                study=study,
                config=config,
                base=base,
                splits=splits,
                n_trials=args.trials,
                study_run=study_run,
                repeats=args.repeats,
            )
            with held():
                log_pictures(study, study_run)
    except KeyboardInterrupt as exc:
        return interrupted_exit(exc, "study", advice="; rerun to resume it")
    print(summary(study))
    return 0


def _same_repeats(study: optuna.Study, repeats: int) -> None:
    """A study compares means over one number of seeds: trials of another would not compare."""
    with held():
        before = study.user_attrs.get("repeats", 1 if study.trials else None)
        if before is None:
            study.set_user_attr("repeats", repeats)
    if before is not None and before != repeats:
        raise InputError(
            f"--repeats is {repeats} but study {study.study_name!r} scores trials over {before} "
            f"seed(s); expected --repeats {before}, or a new --study name"
        )


def _describe(entry) -> str:
    if isinstance(entry, Choice):
        return "choices " + json.dumps([choice_label(c) for c in entry.choices])
    kind = "int" if entry.whole else "float"
    return f"{kind} [{entry.low}, {entry.high}]{' log' if entry.log else ''}"


if __name__ == "__main__":
    sys.exit(main())

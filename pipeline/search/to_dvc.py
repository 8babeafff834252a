"""From a study's best trial back to DVC: the `dvc exp run` that trains it as an experiment,
and the environment that makes that experiment's MLflow run link to the trial."""

from __future__ import annotations

import re
from typing import Any

# Runs what dvc_exp_run queued when a trial was trained over several seeds.
RUN_QUEUED = ["dvc", "exp", "run", "--run-all"]


def dvc_exp_run(
    study_name: str, number: int, values: dict[str, Any], user_attrs: dict[str, Any]
) -> tuple[list[str], dict[str, str]]:
    """(argv of `dvc exp run -n <study>-trial-<n> -S key=value ...`, its link variables).

    A trial trained over several seeds (`pipeline.tune --repeats`) becomes a queued sweep over
    the same train.seed values (experiments <name>-1, <name>-2, ...; then RUN_QUEUED), so
    `pipeline.compare` sees the trial's configuration with its seeds."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{study_name}-trial-{number}")
    command = ["dvc", "exp", "run", "-n", name]
    seeds = user_attrs.get("train_seeds") or []
    if len(seeds) > 1:
        command[3:3] = ["--queue"]
        command += ["-S", "train.seed=" + ",".join(str(seed) for seed in seeds)]
    for key, value in values.items():
        command += ["-S", f"{key}={yaml_value(value)}"]
    # Names from pipeline.tracking.LINK_VARIABLES, which turns them into the run's tags.
    ids = {
        "PIPELINE_STUDY_RUN": user_attrs.get("mlflow_parent_run_id"),
        "PIPELINE_TRIAL": str(number),
        "PIPELINE_TRIAL_RUN": user_attrs.get("mlflow_run_id"),
    }
    return command, {var: value for var, value in ids.items() if value}


def yaml_value(value: Any) -> str:
    """`-S` values as DVC parses them (YAML): exact floats, lists in brackets, true/false."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = repr(value)
        # YAML 1.1 reads 1e-05 as text; 1.0e-05 is a number in every YAML.
        return text.replace("e", ".0e") if "e" in text and "." not in text else text
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return str(value)


def format_best(number: int, value: float, val_loss: float | None, values: dict) -> str:
    loss = f" val_loss {val_loss:.4f}" if val_loss is not None else ""
    lines = [f"best trial {number}: val_accuracy {value:.4f}{loss}"]
    lines += [f"  {key} = {yaml_value(v)}" for key, v in values.items()]
    return "\n".join(lines)

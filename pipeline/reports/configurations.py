"""DVC experiments grouped into configurations: the experiments whose params differ only in
train.seed are repeats of one configuration, ranked by their mean validation accuracy.

The rows are `dvc.api.exp_show()`'s: one flat dict per experiment, params by dotted key with
their values as text or float (`"False"`, `"[30, 20]"`, `7.0`). They are read back into
params.yaml's types, so a configuration is the same however its YAML was written, and an
experiment from before train.seed existed reads as train.seed = seed.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, get_type_hints

from pipeline.config.params import build
from pipeline.config.schema import REPEAT_KEY, Params, configuration_digest
from pipeline.process.errors import InputError
from pipeline.reports.seeds import Spread, spread

TRAIN_METRICS = "metrics/train.json"
EVAL_METRICS = "metrics/eval.json"


@dataclass(frozen=True)
class Experiment:
    name: str
    params: dict[str, Any]  # Params.flat(): train.lr
    train_seed: int  # train.seed, or `seed` where it is null or absent
    val_accuracy: float
    val_loss: float
    test_accuracy: float | None
    run_id: str | None


@dataclass(frozen=True)
class Configuration:
    digest: str  # the MLflow runs' config.digest tag
    params: dict[str, Any]  # every param but train.seed
    runs: tuple[Experiment, ...]  # best seed first
    accuracy: Spread  # of val_accuracy over the seeds
    loss: Spread  # of val_loss

    @property
    def best(self) -> Experiment:
        return self.runs[0]

    @property
    def accuracies(self) -> list[float]:
        return [run.val_accuracy for run in self.runs]


def experiments(rows: list[dict]) -> tuple[list[Experiment], list[str]]:
    """The experiments of `dvc.api.exp_show()` that have a validation accuracy, and a note for
    each whose params cannot be read (a key from another version of the pipeline)."""
    found, skipped = [], []
    for row in rows:
        accuracy = _metric(row, TRAIN_METRICS, "val_accuracy")
        if row.get("typ") == "baseline" or not isinstance(accuracy, float):
            continue  # the workspace and commits, queued or failed runs, no validation split
        name = row.get("Experiment") or str(row.get("rev"))
        try:
            params = read_params(row)
        except (InputError, ValueError, SyntaxError) as exc:
            skipped.append(f"{name}: {exc}")
            continue
        loss = _metric(row, TRAIN_METRICS, "val_loss")
        test = _metric(row, EVAL_METRICS, "test_accuracy")
        run_id = _metric(row, TRAIN_METRICS, "mlflow_run_id")
        found.append(
            Experiment(
                name=name,
                params=params.flat(),
                train_seed=params.train_seed,
                val_accuracy=accuracy,
                val_loss=loss if isinstance(loss, float) else float("inf"),
                test_accuracy=test if isinstance(test, float) else None,
                run_id=run_id if isinstance(run_id, str) else None,
            )
        )
    return found, skipped


def read_params(row: dict) -> Params:
    """A row's params in params.yaml's types; keys the row lacks keep their defaults."""
    tree: dict[str, Any] = {}
    for key in Params().flat():
        if key in row and row[key] is not None:
            *sections, name = key.split(".")
            node = tree
            for section in sections:
                node = node.setdefault(section, {})
            node[name] = _typed(key, row[key])
    return build(tree, source="dvc exp show")


def _typed(key: str, value: Any) -> Any:
    """`"False"` -> False, `"None"` -> None, `7.0` -> 7, `"[30, 20]"` -> [30, 20], by the key's
    type in Params."""
    hint = _hints()[key]
    if value == "None" and hint in (int | None, bool | None):
        return None
    if hint in (bool, bool | None):
        return {"True": True, "False": False}.get(value, value)
    if hint in (int, int | None) and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint in (tuple[int, ...], tuple[str, ...]) and isinstance(value, str):
        return list(ast.literal_eval(value))
    return value


@functools.cache
def _hints(cls: type = Params, prefix: str = "") -> dict[str, Any]:
    hints = {}
    for field in dataclasses.fields(cls):
        hint = get_type_hints(cls)[field.name]
        if dataclasses.is_dataclass(hint):
            hints.update(_hints(hint, f"{prefix}{field.name}."))
        else:
            hints[prefix + field.name] = hint
    return hints


def _metric(row: dict, path: str, name: str) -> Any:
    # exp_show names a metric by its file only where two files share the name.
    return row.get(f"{path}:{name}", row.get(name))


def configurations(found: list[Experiment]) -> list[Configuration]:
    """Experiments grouped by every param but train.seed; best mean validation accuracy first
    (ties: lower mean validation loss)."""
    groups: dict[str, dict[int, Experiment]] = {}
    for experiment in found:
        seeds = groups.setdefault(configuration_digest(experiment.params), {})
        # One run per training seed: an experiment run twice is one repeat, not two.
        seeds.setdefault(experiment.train_seed, experiment)
    grouped = []
    for digest, by_seed in groups.items():
        runs = list(by_seed.values())
        runs.sort(key=lambda e: (-e.val_accuracy, e.val_loss, e.name))
        params = {k: v for k, v in runs[0].params.items() if k != REPEAT_KEY}
        accuracy = spread([e.val_accuracy for e in runs])
        loss = spread([e.val_loss for e in runs])
        grouped.append(Configuration(digest, params, tuple(runs), accuracy, loss))
    return sorted(grouped, key=lambda c: (-c.accuracy.mean, c.loss.mean, c.best.name))

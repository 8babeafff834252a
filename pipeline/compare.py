"""Choose the best experiment of a sweep on validation accuracy, then report its test accuracy.

`dvc exp show --sort-by metrics/train.json:val_accuracy` sorts, but it also puts every
experiment's test accuracy in front of whoever chooses. Here the choice is made on the
validation split only (the notebook: tune hyperparameters on a validation set, never the test
set) and only the chosen experiment's test accuracy is shown, with both ways back to it: the DVC
experiment to apply and its MLflow run.

    python -m pipeline.compare            # experiments of HEAD, as `dvc exp show` lists them
    python -m pipeline.compare --promote  # and the chosen one's model becomes @champion
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from pipeline import tracking
from pipeline.config.schema import ExportParams
from pipeline.process.errors import InputError, exits_cleanly

TRAIN_METRICS = "metrics/train.json"
EVAL_METRICS = "metrics/eval.json"


@dataclass(frozen=True)
class Experiment:
    name: str
    params: dict[str, Any]  # params.yaml flattened: train.lr
    val_accuracy: float
    val_loss: float
    test_accuracy: float | None
    run_id: str | None


def experiments(exp_show: list[dict]) -> list[Experiment]:
    """The experiments in `dvc exp show --json` output that have a validation accuracy."""
    found = []
    for baseline in exp_show:
        for experiment in baseline.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                data = rev.get("data") or {}
                train = _file_data(data.get("metrics"), TRAIN_METRICS)
                if "val_accuracy" not in train:
                    continue  # queued, failed, or trained without a validation split
                found.append(
                    Experiment(
                        name=experiment.get("name") or rev.get("name") or rev["rev"][:7],
                        params=_flatten(_file_data(data.get("params"), "params.yaml")),
                        val_accuracy=train["val_accuracy"],
                        val_loss=train.get("val_loss", float("inf")),
                        test_accuracy=_file_data(data.get("metrics"), EVAL_METRICS).get(
                            "test_accuracy"
                        ),
                        run_id=train.get("mlflow_run_id"),
                    )
                )
    return found


def ranked(found: list[Experiment]) -> list[Experiment]:
    """Best first: highest validation accuracy, then lowest validation loss."""
    return sorted(found, key=lambda e: (-e.val_accuracy, e.val_loss, e.name))


def report(order: list[Experiment], links: list[str]) -> str:
    """The ranking (params that differ, validation figures, run ids), then the chosen one and
    `links` to it (its run, the experiment's runs)."""
    varying = [key for key in order[0].params if len({str(e.params.get(key)) for e in order}) > 1]
    header = ["experiment", *varying, "val_accuracy", "val_loss", "mlflow_run_id"]
    rows = [
        [e.name, *(str(e.params.get(k)) for k in varying), *_figures(e), e.run_id or "-"]
        for e in order
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [_line(row, widths) for row in [header, *rows]]
    best = order[0]
    test = "-" if best.test_accuracy is None else f"{best.test_accuracy:.4f}"
    lines += [
        "",
        f"chosen on validation accuracy: {best.name}",
        f"  test_accuracy {test}",
        f"  dvc exp apply {best.name}",
    ]
    lines += [f"  {link}" for link in links]
    return "\n".join(lines)


def _figures(e: Experiment) -> list[str]:
    return [f"{e.val_accuracy:.4f}", f"{e.val_loss:.4f}"]


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()


def _file_data(section: dict | None, path: str) -> dict:
    return ((section or {}).get(path) or {}).get("data") or {}


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def exp_show() -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"], capture_output=True, text=True
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"dvc exp show --json exited {done.returncode}: {last}")
    return json.loads(done.stdout)


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ui",
        default=None,
        help="the MLflow UI's address for the links (default: MLFLOW_UI_URL, else "
        "http://127.0.0.1:$UI_PORT, 5000: as make ui)",
    )
    parser.add_argument(
        "--promote",
        action="store_true",
        help="make the chosen experiment's model @champion in the registry (@previous: the last)",
    )
    args = parser.parse_args(argv)
    found = experiments(exp_show())
    if not found:
        raise InputError(
            f"no experiment has {TRAIN_METRICS}:val_accuracy; run experiments with "
            "data.val_size > 0 (a validation split) first"
        )
    order = ranked(found)
    chosen_links = tracking.run_links(order[0].run_id, args.ui) if order[0].run_id else []
    print(report(order, chosen_links))
    if args.promote:
        print(promotion(order[0]))
    return 0


def promotion(chosen: Experiment) -> str:
    """Promote the chosen experiment's model in the registry; the lines say what moved."""
    if not chosen.run_id:
        raise InputError(
            f"experiment {chosen.name}: {TRAIN_METRICS} has no mlflow_run_id (trained with "
            "PIPELINE_TRACKING=0); expected a tracked run to promote"
        )
    name = chosen.params.get("export.model_name") or ExportParams().model_name
    version, moves = tracking.promote(chosen.run_id, name)
    if not moves:
        return f"\n{name} version {version} is @champion already; nothing moved"
    moved = [f"  {name} {move}" for move in moves]
    return "\n".join(["", f"promoted {chosen.name} (run {chosen.run_id}):", *moved])


if __name__ == "__main__":
    sys.exit(main())

"""Compare the configurations of a sweep on validation accuracy over their training seeds, say
whether the best is distinguishable from the second, then report the chosen run's test accuracy.

Experiments that differ only in `train.seed` are repeats of one configuration
(pipeline.reports.configurations): each configuration shows its seeds, the mean and standard
deviation of validation accuracy and loss, and a 95 % interval of the mean; configurations are
ranked by the mean, and Welch's t-test across seeds says whether the first is told apart from
the second (pipeline.reports.seeds). The choice is made on the validation split only (the
notebook: tune hyperparameters on a validation set, never the test set): only the chosen run's
test accuracy is shown, with both ways back to it: the DVC experiment to apply and its MLflow run.

    python -m pipeline.compare            # experiments of HEAD, as `dvc exp show` lists them
    python -m pipeline.compare --promote  # and the chosen run's model becomes @champion
"""

from __future__ import annotations

import argparse
import sys

from pipeline import tracking
from pipeline.config.schema import ExportParams
from pipeline.process.errors import InputError, exits_cleanly, first_line
from pipeline.reports.configurations import (
    TRAIN_METRICS,
    Configuration,
    Experiment,
    configurations,
    experiments,
)
from pipeline.reports.seeds import TEST_NAME, Spread, Verdict, verdict

MIN_EFFECT = 0.005  # a validation accuracy difference below this does not matter


def exp_show() -> list[dict]:
    """`dvc exp show`'s rows for the experiments of HEAD, read in this process."""
    import dvc.api

    try:
        return dvc.api.exp_show()
    except Exception as exc:  # not a DVC repository, no git commit, a broken lock file...
        raise InputError(f"dvc exp show: {first_line(exc)}") from None


def decide(order: list[Configuration], min_effect: float) -> Verdict:
    """First against second; a single configuration has nothing to be told apart from."""
    if len(order) == 1:
        line = f"one configuration ({order[0].accuracy.n} seed(s)): nothing to compare it with"
        return Verdict(True, None, None, line)
    return verdict(_named(order[0]), _named(order[1]), min_effect)


def _named(configuration: Configuration) -> tuple[str, list[float]]:
    return configuration.digest, configuration.accuracies


def report(order: list[Configuration], decided: Verdict, min_effect: float) -> list[str]:
    """The ranking: params that differ, seeds, mean ± std, 95 % interval, vs the first."""
    first = order[0]
    varying = [k for k in first.params if len({str(c.params.get(k)) for c in order}) > 1]
    header = ["configuration", *varying, "seeds", "val_accuracy", "95% interval", "val_loss"]
    header.append(f"vs first ({TEST_NAME})")
    rows = [
        [
            c.digest,
            *(str(c.params.get(key)) for key in varying),
            str(c.accuracy.n),
            _mean_std(c.accuracy),
            _interval(c.accuracy),
            _mean_std(c.loss),
            "-" if c is first else _against(first, c, min_effect),
        ]
        for c in order
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [_line(row, widths) for row in [header, *rows]] + ["", f"verdict: {decided.line}"]


def _mean_std(s: Spread) -> str:
    return f"{s.mean:.4f}" if s.std is None else f"{s.mean:.4f} ± {s.std:.4f}"


def _interval(s: Spread) -> str:
    return "none (n=1)" if s.low is None else f"[{s.low:.4f}, {s.high:.4f}]"


def _against(first: Configuration, other: Configuration, min_effect: float) -> str:
    against = verdict(_named(first), _named(other), min_effect)
    if against.p_value is None:
        return "not tested (n=1)"
    told = "distinguishable" if against.distinguishable else "not distinguishable"
    return f"{told} (p={against.p_value:.2g})"


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()


def chosen_lines(best: Configuration, links: list[str]) -> list[str]:
    """The best seed of the best configuration: its test accuracy and the ways back to it."""
    run = best.best
    test = "-" if run.test_accuracy is None else f"{run.test_accuracy:.4f}"
    return [
        "",
        f"chosen on validation accuracy: {run.name} (train.seed {run.train_seed}, the best of "
        f"configuration {best.digest}'s {best.accuracy.n} seed(s))",
        f"  test_accuracy {test}",
        f"  dvc exp apply {run.name}",
        *(f"  {link}" for link in links),
    ]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
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
        help="make the chosen run's model @champion in the registry (@previous: the last); "
        "only when the best configuration is distinguishable from the second",
    )
    parser.add_argument(
        "--accept-indistinguishable",
        action="store_true",
        help="--promote even when the best configuration is not told apart from the second",
    )
    parser.add_argument(
        "--min-effect",
        type=float,
        default=MIN_EFFECT,
        help=f"validation accuracy difference that matters (default {MIN_EFFECT})",
    )
    args = parser.parse_args(argv)
    if not args.min_effect >= 0:
        raise InputError(f"--min-effect is {args.min_effect}; expected a number, 0 or more")
    return args


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    found, skipped = experiments(exp_show())
    if not found:
        raise InputError(
            f"no experiment has {TRAIN_METRICS}:val_accuracy; run experiments with "
            "data.val_size > 0 (a validation split) first"
        )
    order = configurations(found)
    decided = decide(order, args.min_effect)
    best = order[0].best
    links = tracking.run_links(best.run_id, args.ui) if best.run_id else []
    lines = [f"skipped {note}" for note in skipped]
    lines += [*report(order, decided, args.min_effect), *chosen_lines(order[0], links)]
    print("\n".join(lines))
    if args.promote:
        if not decided.distinguishable and not args.accept_indistinguishable:
            raise InputError(
                f"--promote: configuration {order[0].digest} is not distinguishable from "
                f"{order[1].digest}; expected more train.seed values per configuration, or "
                "--accept-indistinguishable to promote its best run anyway"
            )
        print(promotion(best))
    return 0


def promotion(chosen: Experiment) -> str:
    """Promote the chosen run's model in the registry; the lines say what moved."""
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

"""Stage `evaluate`: accuracy and per-class figures, logged into the training's MLflow run.

As train does, main() starts the tracking agent before torch is imported (in evaluate()), and
the figures are computed and written while the agent imports MLflow and reopens the run: only
the logging waits for it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pipeline.config.params import load_params
from pipeline.data.batching import make_loader
from pipeline.data.splits import Split, check_width, load_split
from pipeline.process.errors import exits_cleanly
from pipeline.process.files import write_json, write_text
from pipeline.reports import metrics, plots
from pipeline.tracking.runs import prepare_tracking, recorded_run_id, resume_run, run_status


def run(
    *,
    batch_size: int,
    data_dir: Path,
    checkpoint_path: Path,
    train_metrics: Path,
    metrics_path: Path,
    plots_dir: Path,
) -> dict:
    """Evaluate while the agent reopens the training's run (they share no input), then log."""
    done: dict = {}

    def evaluate_meanwhile() -> None:
        done.update(evaluate(batch_size, data_dir, checkpoint_path, metrics_path, plots_dir))

    tracker = resume_run(recorded_run_id(train_metrics), meanwhile=evaluate_meanwhile)
    report = done["report"]
    with run_status(tracker):
        tracker.log_datasets([done["test"].as_dataset("test", "testing")])
        tracker.log_metric("train_accuracy", report["train_accuracy"])
        tracker.log_metric("test_accuracy", report["test_accuracy"])
        tracker.log_artifact(plots_dir / "confusion.png", "plots")
    return report


def evaluate(
    batch_size: int, data_dir: Path, checkpoint_path: Path, metrics_path: Path, plots_dir: Path
) -> dict:
    """The figures and their files: metrics/eval.json, plots/confusion.csv and .png."""
    import torch

    from pipeline.model import checkpoint
    from pipeline.runtime.threads import leave_a_core

    leave_a_core(torch.device("cpu"))  # the other core is the tracking agent's
    model, arch = checkpoint.load(checkpoint_path)
    splits = {name: load_split(data_dir / f"{name}.npz") for name in ("train", "test")}
    for name, split in splits.items():
        expectation = f"the model in {checkpoint_path} expects {arch.num_inputs}"
        check_width(split, data_dir / f"{name}.npz", arch.num_inputs, expectation)
    predicted = {name: _predict(model, split, batch_size) for name, split in splits.items()}
    report = metrics.report(splits, predicted, arch.classes)
    matrix = np.asarray(report.pop("confusion_matrix"))
    confusion = metrics.confusion_csv(splits["test"], predicted["test"])
    write_text(plots_dir / "confusion.csv", confusion)
    plots.confusion_matrix(matrix, plots_dir / "confusion.png", arch.classes)
    write_json(metrics_path, report)
    return {"report": report, "test": splits["test"]}


def _predict(model, split: Split, batch_size: int) -> np.ndarray:
    import torch

    from pipeline.model.inference import predict_proba

    loader = make_loader(split, batch_size)
    return predict_proba(model, loader, torch.device("cpu")).argmax(dim=1).numpy()


@exits_cleanly
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/checkpoint.pth"))
    parser.add_argument("--train-metrics", type=Path, default=Path("metrics/train.json"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics/eval.json"))
    parser.add_argument("--plots", type=Path, default=Path("plots"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if recorded_run_id(args.train_metrics):
        prepare_tracking()
    report = run(
        batch_size=params.evaluate.batch_size,
        data_dir=args.data,
        checkpoint_path=args.checkpoint,
        train_metrics=args.train_metrics,
        metrics_path=args.metrics,
        plots_dir=args.plots,
    )
    train_acc, test_acc = report["train_accuracy"], report["test_accuracy"]
    print(f"train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

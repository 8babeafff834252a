"""Stage `evaluate`: accuracy and per-class figures, logged into the training's MLflow run.

As train does, main() starts the tracking agent before torch is imported (in run()), so that
MLflow's import in the agent overlaps torch's here.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np

from pipeline import tracking
from pipeline.config.params import load_params
from pipeline.data.batching import make_loader
from pipeline.data.splits import Split, load_split
from pipeline.process.errors import InputError, exits_cleanly
from pipeline.process.files import write_json, write_text
from pipeline.reports import plots


def run(
    *,
    batch_size: int,
    data_dir: Path,
    checkpoint_path: Path,
    train_metrics: Path,
    metrics_path: Path,
    plots_dir: Path,
) -> dict:
    import torch

    from pipeline.model import checkpoint
    from pipeline.runtime.threads import leave_a_core

    leave_a_core(torch.device("cpu"))  # the other core is the tracking agent's
    model, arch = checkpoint.load(checkpoint_path)
    splits = {name: load_split(data_dir / f"{name}.npz") for name in ("train", "test")}
    for name, split in splits.items():
        if split.features.shape[1] != arch.num_inputs:
            raise InputError(
                f"{data_dir / name}.npz: {split.features.shape[1]} features; the model in "
                f"{checkpoint_path} expects {arch.num_inputs}"
            )
    predicted = {name: _predict(model, split, batch_size) for name, split in splits.items()}
    plots.warm_up()  # matplotlib's import, while the agent may still be opening the store
    tracker = tracking.resume_run(tracking.recorded_run_id(train_metrics))
    with tracking.run_status(tracker):
        tracker.log_datasets([splits["test"].as_dataset("test", "testing")])
        report = _report(splits, predicted, arch.classes)
        matrix = np.asarray(report.pop("confusion_matrix"))
        write_text(plots_dir / "confusion.csv", _confusion_csv(splits["test"], predicted["test"]))
        plots.confusion_matrix(matrix, plots_dir / "confusion.png", arch.classes)
        write_json(metrics_path, report)
        tracker.log_metric("train_accuracy", report["train_accuracy"])
        tracker.log_metric("test_accuracy", report["test_accuracy"])
        tracker.log_artifact(plots_dir / "confusion.png", "plots")
    return report


def _predict(model, split: Split, batch_size: int) -> np.ndarray:
    import torch

    from pipeline.model.inference import predict_proba

    loader = make_loader(split, batch_size)
    return predict_proba(model, loader, torch.device("cpu")).argmax(dim=1).numpy()


def _confusion_csv(test: Split, predicted: np.ndarray) -> str:
    """actual,predicted per test row, in class names (quoted where a name needs it)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["actual", "predicted"])
    names = np.asarray(test.classes, dtype=object)
    writer.writerows(zip(names[test.labels], names[predicted], strict=True))
    return out.getvalue()


def _report(splits: dict[str, Split], predicted: dict[str, np.ndarray], classes: tuple) -> dict:
    # With numpy rather than sklearn.metrics, whose import (scipy and more) took 1.9 s, longer
    # than the whole evaluation; tests/test_evaluate.py compares every figure with scikit-learn.
    n_classes = len(classes)
    truth = splits["test"].labels
    matrix = confusion_matrix(truth, predicted["test"], n_classes)
    hits = np.diag(matrix).astype(float)
    actual, chosen = matrix.sum(axis=1), matrix.sum(axis=0)
    precision, recall = _share(hits, chosen), _share(hits, actual)
    f1 = _share(2 * hits, actual + chosen)  # 2tp / (2tp + fp + fn)
    return {
        "train_accuracy": float(np.mean(splits["train"].labels == predicted["train"])),
        "test_accuracy": float(np.mean(truth == predicted["test"])),
        "per_class": {
            str(classes[c]): {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(actual[c]),
            }
            for c in range(n_classes)
        },
        "confusion_matrix": matrix.tolist(),
    }


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: actual class; columns: predicted class."""
    cells = np.asarray(truth, dtype=np.int64) * n_classes + np.asarray(predicted, dtype=np.int64)
    return np.bincount(cells, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole, and 0 where whole is 0 (scikit-learn's zero_division=0)."""
    return np.divide(part, whole, out=np.zeros(len(part)), where=whole > 0)


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
    if tracking.recorded_run_id(args.train_metrics):
        tracking.prepare_tracking()
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

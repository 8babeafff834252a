"""Metrics maths: accuracy, per-class precision, recall, F1 and support, the confusion matrix.

With numpy rather than sklearn.metrics, whose import (scipy and more) took 1.9 s, longer than the
whole evaluation; tests/test_evaluate.py compares every figure with scikit-learn."""

from __future__ import annotations

import csv
import io

import numpy as np

from pipeline.data.splits import Split


def confusion_csv(test: Split, predicted: np.ndarray) -> str:
    """actual,predicted per test row, in class names (quoted where a name needs it)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["actual", "predicted"])
    names = np.asarray(test.classes, dtype=object)
    writer.writerows(zip(names[test.labels], names[predicted], strict=True))
    return out.getvalue()


def report(splits: dict[str, Split], predicted: dict[str, np.ndarray], classes: tuple) -> dict:
    """metrics/eval.json's figures (and the test confusion matrix) from predicted classes."""
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

"""evaluate's figures against scikit-learn's, on labels where a class is never predicted or
never present (zero_division=0)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from pipeline.data.splits import Split
from pipeline.reports.metrics import report as _report


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    classes = ("setosa", "versicolor", "virginica", "unseen")  # figures speak in class names
    n_classes = len(classes)
    truth = rng.integers(0, 3, 500)  # class 3 never present
    predicted = np.where(rng.random(500) < 0.7, truth, rng.integers(0, 4, 500))
    predicted[predicted == 1] = 0  # class 1 never predicted
    train_truth, train_predicted = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    splits = {
        "train": Split(np.zeros((300, 2), np.float32), train_truth),
        "test": Split(np.zeros((500, 2), np.float32), truth),
    }
    report = _report(splits, {"train": train_predicted, "test": predicted}, classes)
    labels = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    assert report["train_accuracy"] == pytest.approx(accuracy_score(train_truth, train_predicted))
    assert report["test_accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    expected = confusion_matrix(truth, predicted, labels=labels).tolist()
    assert report["confusion_matrix"] == expected
    for c in labels:
        figures = report["per_class"][classes[c]]
        assert figures["precision"] == pytest.approx(precision[c])
        assert figures["recall"] == pytest.approx(recall[c])
        assert figures["f1"] == pytest.approx(f1[c])
        assert figures["support"] == support[c]

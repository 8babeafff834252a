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


def contrast(colour_a, colour_b) -> float:
    """WCAG's contrast ratio of two colours, from matplotlib's own colour conversion."""
    from matplotlib.colors import to_rgb

    def luminance(colour) -> float:
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in colour]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(to_rgb(colour_a)), luminance(to_rgb(colour_b))), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_confusion_counts_are_written_in_the_colour_that_reads_on_their_cell():
    import matplotlib.pyplot as plt

    from pipeline.reports.plots import confusion_figure

    matrix = np.array([[48, 1, 0], [2, 30, 15], [0, 9, 44]])
    fig = confusion_figure(matrix, classes=("a", "b", "c"))
    ax = fig.axes[0]
    # The cells' colours as drawn: the image's own colour mapping of each count.
    cells = ax.images[0].to_rgba(matrix)
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert len(texts) == matrix.size
    for (row, col), count in np.ndenumerate(matrix):
        text, cell = texts[row, col], cells[row, col][:3]
        assert text.get_text() == str(count)
        other = "black" if text.get_color() == "white" else "white"
        assert contrast(text.get_color(), cell) >= contrast(other, cell), (row, col)
    # The darkest cell (the largest count) gets white, the lightest (0) black.
    assert texts[0, 0].get_color() == "white"
    assert texts[0, 2].get_color() == "black"
    plt.close(fig)

"""Pictures of a run for MLflow and `dvc plots`: the loss curve and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.process.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def warm_up() -> None:
    """Import matplotlib now (about 0.6 s), where the caller would otherwise only wait."""
    _pyplot()


def loss_curve(steps: list[int], losses: list[float], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, linewidth=0.8)
    ax.set(xlabel="step (global batch index)", ylabel="train_loss", title="Per-batch training loss")
    ax.grid(alpha=0.3)
    _save(fig, path)


def confusion_matrix(matrix: np.ndarray, path: Path, classes=None) -> None:
    """Counts of actual (rows) against predicted (columns), ticks named after the classes."""
    _save(confusion_figure(matrix, classes), path)


def confusion_figure(matrix: np.ndarray, classes=None):
    """The confusion matrix's figure; each count written in the colour that reads on its cell."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    image = ax.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        cell = image.cmap(image.norm(count))
        ax.text(col, row, str(count), ha="center", va="center", color=text_colour(cell))
    ticks = range(len(matrix))
    names = [str(c) for c in (classes if classes is not None else ticks)]
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="actual", title="Test confusion")
    long_names = max(map(len, names)) > 3
    ax.set_xticklabels(
        names, rotation=45 if long_names else 0, ha="right" if long_names else "center"
    )
    ax.set_yticklabels(names)
    fig.colorbar(image, ax=ax)
    return fig


def text_colour(cell_rgba) -> str:
    """White on dark cells, black on light ones: the cell's relative luminance (sRGB, WCAG)."""
    red, green, blue = (_linear(channel) for channel in cell_rgba[:3])
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    # The luminance where black and white text have the same contrast ratio.
    return "white" if luminance < 0.179 else "black"


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)

"""Writing figures: every PNG the suite makes goes through `save_figure`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from apps.common.files import write_atomically


def new_figure(width: float, height: float) -> Figure:
    """A Matplotlib figure outside pyplot: no global state, no display needed."""
    return Figure(figsize=(width, height))


def save_figure(figure: Figure, path: Path | str, dpi: int = 120) -> Path:
    """Writes `figure` as a PNG at `path`, atomically: a reader never sees half a file.

    (`apps.common.files.write_atomically`: on any failure `path` is untouched).
    """
    return write_atomically(path, lambda partial: figure.savefig(partial, dpi=dpi, format="png"), ".png")


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_labels: int) -> np.ndarray:
    """`[true label, predicted label]` counts."""
    matrix = np.zeros((num_labels, num_labels), np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def save_confusion_matrix(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """Draws `matrix` as a labelled heat map with counts to a PNG at `path`."""
    size = max(4.0, 0.45 * len(labels) + 2)
    figure = new_figure(size, size)
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axes.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > matrix.max() / 2 else "black",
            )
    figure.tight_layout()
    save_figure(figure, path)

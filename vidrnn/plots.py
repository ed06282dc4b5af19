"""Plots shared by the command line and notebooks: the confusion matrix (figure, CSV, PNG) and box overlays.

Figures are built as :class:`matplotlib.figure.Figure` objects, never through ``pyplot``. Such a figure needs no GUI
backend — ``savefig`` renders with Agg — so the CLI works on a headless server, and nothing here changes the backend
a notebook has chosen (calling ``matplotlib.use("Agg")`` at import would).

Convention throughout: rows are the true class, columns the predicted class, as in torchmetrics and scikit-learn.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import Tensor

__all__ = [
    "BOX_COLOURS",
    "confusion_matrix_figure",
    "draw_boxes",
    "normalize_rows",
    "read_confusion_csv",
    "save_confusion_matrix",
    "write_confusion_csv",
]

#: Above this many classes, cells are too small for numbers; the colours alone carry the matrix.
MAX_ANNOTATED_CLASSES = 20
_CORNER = "true \\ predicted"


def _as_counts(matrix: np.ndarray | Tensor, class_names: Sequence[str]) -> np.ndarray:
    """The matrix as a ``[K,K]`` int64 array, checked against ``class_names``.

    Refusing non-integral values catches the easy mistake of passing an already normalised matrix, which would be
    written to the CSV as zeros and ones.
    """
    if isinstance(matrix, Tensor):
        matrix = matrix.detach().cpu().numpy()
    values = np.asarray(matrix)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"a confusion matrix must be square [K,K], got shape {list(values.shape)}")
    if values.shape[0] != len(class_names):
        raise ValueError(f"{len(class_names)} class names for a {values.shape[0]}-class confusion matrix")
    if np.any(values < 0) or np.any(values != np.round(values)):
        raise ValueError("a confusion matrix must hold non-negative integer counts")
    return values.astype(np.int64)


def normalize_rows(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum: the fraction of each true class predicted as each class.

    A class with no samples keeps a row of zeros instead of dividing by zero, so the plot shows "no data" rather
    than NaN.
    """
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


def confusion_matrix_figure(matrix: np.ndarray | Tensor, class_names: Sequence[str], normalize: bool = True) -> Figure:
    """A confusion-matrix heat map: rows true class, columns predicted, colour bar, overall accuracy in the title.

    ``normalize`` colours each row by fractions of its true class, so rare classes are as readable as common ones;
    the title always reports accuracy over all counted clips. Cells are annotated when there are at most
    :data:`MAX_ANNOTATED_CLASSES` classes.
    """
    counts = _as_counts(matrix, class_names)
    values = normalize_rows(counts) if normalize else counts.astype(np.float64)
    size = _figure_inches(len(class_names))
    figure = Figure(figsize=(size, size), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(values.max(), 1.0))
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of true class" if normalize else "clips")
    _label_axes(axes, class_names, size)
    if len(class_names) <= MAX_ANNOTATED_CLASSES:
        _annotate(axes, values, image.norm, normalize)
    axes.set_title(_accuracy_title(counts))
    return figure


def write_confusion_csv(matrix: np.ndarray | Tensor, class_names: Sequence[str], path: Path) -> Path:
    """Write counts as CSV: a header of predicted class names, then one row per true class, its name first."""
    counts = _as_counts(matrix, class_names)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow([_CORNER, *class_names])
        for name, row in zip(class_names, counts):
            writer.writerow([name, *row.tolist()])
    return path


def read_confusion_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read a file written by :func:`write_confusion_csv`; returns ``(counts [K,K] int64, class_names)``."""
    with open(path, newline="", encoding="utf-8") as stream:
        header, *rows = list(csv.reader(stream))
    class_names = header[1:]
    if [row[0] for row in rows] != class_names:
        raise ValueError(f"{path}: row names do not match the header's class names")
    counts = np.array([[int(value) for value in row[1:]] for row in rows], dtype=np.int64)
    return counts, class_names


def save_confusion_matrix(
    matrix: np.ndarray | Tensor, class_names: Sequence[str], directory: Path, stem: str = "confusion_matrix"
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (exact counts) and ``<stem>.png`` (row-normalised plot) into ``directory``.

    The CSV is the record to compute from; the PNG is for looking at. Returns ``(csv_path, png_path)``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = write_confusion_csv(matrix, class_names, directory / f"{stem}.csv")
    png_path = directory / f"{stem}.png"
    confusion_matrix_figure(matrix, class_names).savefig(png_path, dpi=100)
    return csv_path, png_path


def _figure_inches(num_classes: int) -> float:
    """Grow with the class count so labels stay legible, capped so 101 classes still make a modest image."""
    return min(4.0 + 0.45 * num_classes, 20.0)


def _label_axes(axes: Axes, class_names: Sequence[str], inches: float) -> None:
    """Class names on both axes, sized to fit a cell's height; predicted names rotated so long names do not overlap."""
    positions = np.arange(len(class_names))
    font_size = min(9.0, 0.45 * 72.0 * inches / len(class_names))
    axes.set_xticks(positions, class_names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font_size)
    axes.set_yticks(positions, class_names, fontsize=font_size)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")


def _annotate(axes: Axes, values: np.ndarray, norm: Normalize, normalize: bool) -> None:
    """Write each cell's value in it, white on dark cells and black on light ones."""
    for (row, column), value in np.ndenumerate(values):
        text = f"{value:.2f}" if normalize else str(int(value))
        colour = "white" if norm(value) > 0.5 else "black"
        axes.text(column, row, text, ha="center", va="center", color=colour, fontsize=8)


def _accuracy_title(counts: np.ndarray) -> str:
    """Overall accuracy (trace over total), with the counts it comes from."""
    total = int(counts.sum())
    if total == 0:
        return "no clips counted"
    correct = int(np.trace(counts))
    return f"accuracy {correct / total:.1%} ({correct}/{total} clips)"


#: Box colours (RGB) for overlays, in the order trackers are listed: green, red, blue, orange, magenta.
BOX_COLOURS = ((40, 200, 60), (230, 40, 40), (40, 110, 240), (250, 160, 20), (210, 60, 210))


def draw_boxes(frame: np.ndarray, boxes: Sequence[np.ndarray], labels: Sequence[str] | None = None,
               thickness: int = 2) -> np.ndarray:
    """A copy of an RGB ``frame`` with ``x, y, w, h`` boxes drawn in :data:`BOX_COLOURS` (NaN boxes are skipped).

    Used by ``vidrnn track --render`` and the tracking notebook; labels, when given, are written above each box.
    """
    import cv2

    canvas = np.ascontiguousarray(frame).copy()
    for position, box in enumerate(boxes):
        if box is None or np.isnan(np.asarray(box, dtype=float)).any():
            continue
        colour = BOX_COLOURS[position % len(BOX_COLOURS)]
        x, y, w, h = (int(round(float(value))) for value in box)
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        if labels is not None:
            cv2.putText(canvas, labels[position], (x, max(y - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1,
                        cv2.LINE_AA)
    return canvas

"""Plots shared by the command line and notebooks: the confusion matrix (figure, CSV, PNG), box overlays, per-frame
timelines (class probabilities, tracking IoU) and grids of frames.

Figures are built as :class:`matplotlib.figure.Figure` objects, never through ``pyplot``. Such a figure needs no GUI
backend — ``savefig`` renders with Agg — so the CLI works on a headless server, and nothing here changes the backend
a notebook has chosen (calling ``matplotlib.use("Agg")`` at import would).

Convention throughout: rows are the true class, columns the predicted class, as in torchmetrics and scikit-learn.
"""

from __future__ import annotations

import csv
import functools
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.ticker import MaxNLocator
from torch import Tensor

__all__ = [
    "BOX_COLOURS",
    "confusion_matrix_figure",
    "draw_boxes",
    "frame_grid_figure",
    "iou_timeline_figure",
    "jpeg_bytes",
    "label_fonts",
    "normalize_rows",
    "probability_timeline_figure",
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
    matrix: np.ndarray | Tensor, class_names: Sequence[str], directory: Path
) -> tuple[Path, Path]:
    """Write ``confusion_matrix.csv`` (exact counts) and ``confusion_matrix.png`` (row-normalised plot) into
    ``directory``.

    The CSV is the record to compute from; the PNG is for looking at. Returns ``(csv_path, png_path)``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = write_confusion_csv(matrix, class_names, directory / "confusion_matrix.csv")
    png_path = directory / "confusion_matrix.png"
    confusion_matrix_figure(matrix, class_names).savefig(png_path, dpi=100)
    return csv_path, png_path


def _figure_inches(num_classes: int) -> float:
    """Grow with the class count so labels stay legible, capped so 101 classes still make a modest image."""
    return min(4.0 + 0.45 * num_classes, 20.0)


def _label_axes(axes: Axes, class_names: Sequence[str], inches: float) -> None:
    """Class names on both axes, sized to fit a cell's height; predicted names rotated so long names do not overlap."""
    positions = np.arange(len(class_names))
    font_size = min(9.0, 0.45 * 72.0 * inches / len(class_names))
    fonts = {"fontsize": font_size, "fontfamily": label_fonts(class_names)}
    axes.set_xticks(positions, class_names, rotation=45, ha="right", rotation_mode="anchor", **fonts)
    axes.set_yticks(positions, class_names, **fonts)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")


def label_fonts(names: Sequence[str]) -> list[str]:
    """Font families that draw every character of ``names``: matplotlib's default, then installed fonts that hold
    the characters it lacks (class folders named in Chinese, Arabic, ... drew as boxes), which matplotlib falls back
    to glyph by glyph. Characters no installed font holds are warned about once, pointing to the CSV."""
    default = font_manager.findfont(font_manager.FontProperties())
    missing = {ord(character) for name in names for character in name} - _characters(default)
    families = [font_manager.FontProperties().get_family()[0]]
    for family in dict.fromkeys(font.name for font in font_manager.fontManager.ttflist):
        if not missing:
            break
        if family.startswith("Last Resort"):  # a box for every character
            continue
        # The file matplotlib draws the family with: one name can cover several files (bold, a system copy).
        drawn_with = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        covered = missing & _characters(drawn_with)
        if covered:
            families.append(family)
            missing -= covered
    if missing:
        warnings.warn(f"no installed font draws {''.join(sorted(map(chr, missing)))!r} of the class names: the PNG "
                      "shows boxes for them; the CSV holds the names", stacklevel=3)
    return families


@functools.cache
def _characters(font_file: str) -> frozenset[int]:
    try:
        return frozenset(FT2Font(font_file).get_charmap())
    except (OSError, RuntimeError):  # a font file matplotlib listed but cannot open
        return frozenset()


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


def draw_boxes(frame: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
    """A copy of an RGB ``frame`` with ``x, y, w, h`` boxes drawn in :data:`BOX_COLOURS` (NaN boxes are skipped).

    Used by ``vidrnn track --render`` and the tracking notebook.
    """
    import cv2

    canvas = np.ascontiguousarray(frame).copy()
    for position, box in enumerate(boxes):
        if box is None or np.isnan(np.asarray(box, dtype=float)).any():
            continue
        colour = BOX_COLOURS[position % len(BOX_COLOURS)]
        x, y, w, h = (int(round(float(value))) for value in box)
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, 2)
    return canvas


def _rgb(colour: Sequence[int]) -> tuple[float, ...]:
    """A :data:`BOX_COLOURS` entry as the 0-1 floats matplotlib takes."""
    return tuple(channel / 255 for channel in colour)


def probability_timeline_figure(step_probabilities: np.ndarray, class_names: Sequence[str], *,
                                frame_indices: Sequence[int] | None = None, true_class: str | None = None,
                                top: int = 5, title: str | None = None) -> Figure:
    """Class probabilities after each step of one clip, ``[t,K]``: where in the clip the decision is made.

    Only the ``top`` classes that reach the highest probability anywhere in the clip get a line, because with 101
    classes the rest would be a tangle near zero; the true class always gets one, drawn thicker, so a mistake shows
    which class won and from which frame on. The x axis is the source frame when ``frame_indices`` (the
    :class:`~vidrnn.inference.Prediction`'s) is given, else the step.
    """
    names = list(class_names)
    probabilities = np.asarray(step_probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(names):
        raise ValueError(f"step probabilities must be [t, {len(names)}], got shape {list(probabilities.shape)}")
    if true_class is not None and true_class not in names:
        raise ValueError(f"true class {true_class!r} is not one of the class names")
    steps = np.arange(len(probabilities)) if frame_indices is None else np.asarray(frame_indices)
    shown = list(np.argsort(-probabilities.max(axis=0), kind="stable")[:top])
    if true_class is not None and names.index(true_class) not in shown:
        shown.append(names.index(true_class))
    figure = Figure(figsize=(4.6, 2.3), layout="constrained")
    axes = figure.add_subplot()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for k in shown:
        is_true = names[k] == true_class
        axes.plot(steps, probabilities[:, k], marker=".", linewidth=2.5 if is_true else 1.2,
                  label=f"{names[k]} (true)" if is_true else names[k])
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("step" if frame_indices is None else "frame")
    axes.set_ylabel("probability")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title is not None:
        axes.set_title(title, fontsize=9)
    return figure


def iou_timeline_figure(ious: Mapping[str, np.ndarray], title: str | None = None) -> Figure:
    """IoU with the ground truth frame by frame, one line per tracker, its mean over frames 2.. in the legend.

    A single success score hides *when* a tracker lost the target and whether it came back; this shows it. Frames
    without ground truth (NaN) leave gaps. Tracker ``i`` is drawn in ``BOX_COLOURS[i + 1]``, the colour
    :func:`draw_boxes` gives it when the ground truth comes first, so lines and overlays match. The mean leaves out
    the first frame, whose box the tracker was given, as :func:`vidrnn.metrics.score_sequence` does.
    """
    figure = Figure(figsize=(5.0, 2.4), layout="constrained")
    axes = figure.add_subplot()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for position, (name, values) in enumerate(ious.items()):
        values = np.asarray(values, dtype=np.float64)
        mean = np.nanmean(values[1:]) if np.isfinite(values[1:]).any() else float("nan")
        colour = _rgb(BOX_COLOURS[(position + 1) % len(BOX_COLOURS)])
        axes.plot(np.arange(len(values)), values, color=colour, linewidth=1.2, label=f"{name} (mean {mean:.2f})")
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("frame")
    axes.set_ylabel("IoU with ground truth")
    axes.legend(fontsize=7, loc="lower left", frameon=False)
    if title is not None:
        axes.set_title(title, fontsize=9)
    return figure


def frame_grid_figure(rows: Sequence[Sequence[np.ndarray]], row_titles: Sequence[str] | None = None,
                      frame_titles: Sequence[Sequence[str]] | None = None, row_inches: float = 1.1) -> Figure:
    """RGB frames in a grid, one row per clip, each row under its own title: clips with their predictions, a
    gallery of mistakes, tracked boxes.

    Cells take the first frame's aspect ratio and rows are ``row_inches`` tall, so a notebook's figure stays small
    whatever the frames' resolution. ``frame_titles``, parallel to ``rows``, label single frames (e.g. frame numbers).
    """
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError("frame_grid_figure needs at least one row, and every row at least one frame")
    height, width = np.asarray(rows[0][0]).shape[:2]
    columns = max(len(row) for row in rows)
    title_inches = 0.3 if row_titles is not None else 0.0
    figure = Figure(figsize=(columns * row_inches * width / height, len(rows) * (row_inches + title_inches)),
                    layout="constrained")
    for number, (subfigure, row) in enumerate(zip(np.atleast_1d(figure.subfigures(len(rows), 1)), rows)):
        if row_titles is not None:
            subfigure.suptitle(row_titles[number], fontsize=8)
        for column, axes in enumerate(np.atleast_1d(subfigure.subplots(1, columns))):
            axes.set_axis_off()
            if column < len(row):
                axes.imshow(row[column])
                if frame_titles is not None:
                    axes.set_title(frame_titles[number][column], fontsize=7)
    return figure


def jpeg_bytes(figure: Figure) -> bytes:
    """The figure rendered as JPEG at its own dpi: ``IPython.display.Image(jpeg_bytes(figure))`` in a notebook.

    Video frames compress several times smaller as JPEG than as PNG (the inline backend's format), which keeps
    notebooks committed with their outputs small; keep PNG for line plots, where JPEG blurs the edges.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="jpeg", pil_kwargs={"quality": 80})
    return buffer.getvalue()

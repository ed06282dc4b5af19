from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

from vidrnn.plots import (
    BOX_COLOURS,
    confusion_matrix_figure,
    frame_grid_figure,
    iou_timeline_figure,
    jpeg_bytes,
    label_fonts,
    normalize_rows,
    probability_timeline_figure,
    read_confusion_csv,
    save_confusion_matrix,
    write_confusion_csv,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def random_counts(num_classes: int, seed: int = 0) -> np.ndarray:
    """A plausible confusion matrix: a heavy diagonal plus scattered mistakes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5, size=(num_classes, num_classes)) + np.diag(rng.integers(10, 40, size=num_classes))


def test_csv_round_trips_counts_and_names(tmp_path: Path) -> None:
    counts = random_counts(4)
    names = ["ApplyEyeMakeup", "Basketball, dunk", 'say "hi"', "Yo-Yo"]
    path = write_confusion_csv(torch.from_numpy(counts), names, tmp_path / "cm.csv")
    read_counts, read_names = read_confusion_csv(path)
    assert read_names == names
    assert read_counts.dtype == np.int64
    np.testing.assert_array_equal(read_counts, counts)
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.endswith("Yo-Yo")


def test_save_writes_csv_and_small_valid_png(tmp_path: Path) -> None:
    names = [f"class_{index:02d}" for index in range(10)]
    directory = tmp_path / "out"
    csv_path, png_path = save_confusion_matrix(random_counts(10), names, directory)
    assert (csv_path, png_path) == (directory / "confusion_matrix.csv", directory / "confusion_matrix.png")
    assert png_path.read_bytes()[:8] == PNG_MAGIC
    assert png_path.stat().st_size < 200_000
    assert read_confusion_csv(csv_path)[1] == names


def test_normalized_rows_sum_to_one_and_empty_row_stays_zero() -> None:
    counts = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    fractions = normalize_rows(counts)
    np.testing.assert_allclose(fractions.sum(axis=1), [1.0, 0.0, 1.0])
    np.testing.assert_allclose(fractions[0], [0.75, 0.25, 0.0])
    assert np.isfinite(fractions).all()


def test_figure_shows_normalized_data_and_accuracy() -> None:
    counts = np.array([[3, 1], [0, 4]])
    figure = confusion_matrix_figure(counts, ["a", "b"])
    axes = figure.axes[0]
    np.testing.assert_allclose(axes.images[0].get_array(), [[0.75, 0.25], [0.0, 1.0]])
    assert "87.5%" in axes.get_title()
    assert len(figure.axes) == 2
    assert [text.get_text() for text in axes.texts] == ["0.75", "0.25", "0.00", "1.00"]


def test_figure_without_normalization_annotates_counts() -> None:
    figure = confusion_matrix_figure(np.array([[3, 1], [0, 4]]), ["a", "b"], normalize=False)
    assert [text.get_text() for text in figure.axes[0].texts] == ["3", "1", "0", "4"]


def test_many_classes_are_not_annotated() -> None:
    names = [str(index) for index in range(25)]
    figure = confusion_matrix_figure(random_counts(25), names)
    assert len(figure.axes[0].texts) == 0


@pytest.mark.parametrize(
    ("matrix", "names"),
    [
        (np.zeros((2, 3)), ["a", "b"]),
        (np.zeros((2, 2)), ["a"]),
        (np.array([[0.5, 0.5], [0.0, 1.0]]), ["a", "b"]),
        (np.array([[-1, 0], [0, 1]]), ["a", "b"]),
    ],
)
def test_bad_matrices_are_refused(matrix: np.ndarray, names: list[str], tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_confusion_csv(matrix, names, tmp_path / "cm.csv")


def test_probability_timeline_shows_top_classes_and_the_true_one() -> None:
    names = ["a", "b", "c", "d"]
    probabilities = np.array([[0.7, 0.2, 0.05, 0.05], [0.3, 0.6, 0.05, 0.05], [0.1, 0.8, 0.05, 0.05]])
    figure = probability_timeline_figure(probabilities, names, frame_indices=[0, 5, 10], true_class="d", top=2)
    axes = figure.axes[0]
    assert [line.get_label() for line in axes.lines] == ["b", "a", "d (true)"]
    np.testing.assert_array_equal(axes.lines[0].get_xdata(), [0, 5, 10])
    np.testing.assert_allclose(axes.lines[0].get_ydata(), probabilities[:, 1])
    assert axes.get_xlabel() == "frame"


@pytest.mark.parametrize(("probabilities", "true_class"), [(np.full((3, 2), 0.5), None), (np.eye(3), "x")])
def test_probability_timeline_refuses_mismatched_input(probabilities: np.ndarray, true_class: str | None) -> None:
    with pytest.raises(ValueError):
        probability_timeline_figure(probabilities, ["a", "b", "c"], true_class=true_class)


def test_iou_timeline_reports_mean_without_first_frame_in_overlay_colours() -> None:
    ious = {"ours": np.array([1.0, 0.5, np.nan, 0.7]), "other": np.array([1.0, 0.0, np.nan, 0.2])}
    axes = iou_timeline_figure(ious).axes[0]
    assert [line.get_label() for line in axes.lines] == ["ours (mean 0.60)", "other (mean 0.10)"]
    assert axes.lines[0].get_color() == tuple(channel / 255 for channel in BOX_COLOURS[1])


def test_frame_grid_has_one_image_per_frame_and_keeps_the_aspect() -> None:
    frame = np.zeros((40, 80, 3), dtype=np.uint8)
    figure = frame_grid_figure([[frame, frame, frame], [frame]], row_titles=["clip 1", "clip 2"],
                               frame_titles=[["0", "1", "2"], ["0"]], row_inches=1.0)
    images = [axes for axes in figure.axes if axes.images]
    assert len(images) == 4
    assert [axes.get_title() for axes in images] == ["0", "1", "2", "0"]
    width, height = figure.get_size_inches()
    assert width == pytest.approx(3 * 2.0)
    assert height == pytest.approx(2 * 1.3)


def test_frame_grid_refuses_an_empty_row() -> None:
    with pytest.raises(ValueError):
        frame_grid_figure([[]])


def test_frames_as_jpeg_are_smaller_than_as_png() -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    figure = frame_grid_figure([[noise, noise]])
    jpeg = jpeg_bytes(figure)
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert len(jpeg) < len(png.getvalue()) / 2


def test_class_names_in_any_script_get_a_font_that_draws_them_or_a_warning(recwarn: pytest.WarningsRecorder) -> None:
    """Class folders named in a script the default font lacks drew as boxes in the PNG, silently."""
    default = font_manager.findfont(font_manager.FontProperties())
    default_characters = set(FT2Font(default).get_charmap())
    def drawn_by(family: str) -> set[int]:
        return set(FT2Font(font_manager.findfont(font_manager.FontProperties(family=family))).get_charmap())

    # matplotlib ships STIX and Computer Modern beside DejaVu: some character only another family draws
    code = next(code for family in {font.name for font in font_manager.fontManager.ttflist}
                if not family.startswith("Last Resort") for code in sorted(drawn_by(family) - default_characters))

    assert label_fonts(["Dog", "Cat"]) == [font_manager.FontProperties().get_family()[0]]
    families = label_fonts(["Dog", f"Cat{chr(code)}"])
    assert len(families) == 2 and code in drawn_by(families[1])
    assert not recwarn.list

    with pytest.warns(UserWarning, match=r"no installed font draws '\\u0378' of the class names: the PNG shows boxes"):
        label_fonts(["Dog", "Cat\u0378"])  # unassigned in Unicode

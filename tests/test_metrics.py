"""Tracking metrics against values computed by hand, and the rules for absent targets and the first frame."""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import box_convert, box_iou

from vidrnn.metrics import (
    OVERLAP_THRESHOLDS,
    SequenceScore,
    center_errors,
    iou_per_frame,
    mean_scores,
    paired_iou,
    score_sequence,
    success_auc,
    success_curve,
)


def test_iou_of_hand_made_boxes() -> None:
    truth = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    predicted = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 5, 10]], dtype=float)
    # Identical; half-shifted: 50 / (100 + 100 - 50) = 1/3; disjoint; contained: 50 / 100.
    assert iou_per_frame(predicted, truth) == pytest.approx([1.0, 1 / 3, 0.0, 0.5])


def test_iou_agrees_with_torchvision() -> None:
    rng = np.random.default_rng(0)
    truth = np.c_[rng.uniform(0, 50, (30, 2)), rng.uniform(1, 30, (30, 2))]
    predicted = truth + rng.normal(0, 5, truth.shape)
    predicted[:, 2:] = np.abs(predicted[:, 2:]) + 1
    xyxy = lambda b: torch.tensor(np.c_[b[:, :2], b[:, :2] + b[:, 2:]])  # noqa: E731
    expected = box_iou(xyxy(predicted), xyxy(truth)).diagonal().numpy()
    assert iou_per_frame(predicted, truth) == pytest.approx(expected)


def test_paired_iou_is_torchvisions_iou_of_each_pair_in_the_boxes_own_shape_and_dtype() -> None:
    """The IoU the tracker's training logs and the one its scores use are one function: torchvision's, row by row."""
    generator = torch.Generator().manual_seed(0)
    targets = torch.cat([torch.rand(3, 7, 2, generator=generator), torch.rand(3, 7, 2, generator=generator) + 0.1], -1)
    boxes = targets + 0.1 * torch.randn(3, 7, 4, generator=generator)
    boxes[..., 2:] = boxes[..., 2:].abs() + 0.01
    ious = paired_iou(boxes, targets)
    assert ious.shape == (3, 7) and ious.dtype == torch.float32
    xyxy = [box_convert(value.flatten(0, 1), "xywh", "xyxy") for value in (boxes, targets)]
    expected = box_iou(*xyxy).diagonal().view(3, 7)
    torch.testing.assert_close(ious, expected)


def test_paired_iou_of_a_long_sequence_needs_no_all_pairs_matrix() -> None:
    """200,000 pairs: an all-pairs matrix would hold 4 * 10^10 numbers (160 GB)."""
    boxes = torch.tensor([0.0, 0.0, 10.0, 10.0]).repeat(200_000, 1)
    assert paired_iou(boxes, boxes + torch.tensor([5.0, 0.0, 0.0, 0.0])).eq(1 / 3).all()


def test_iou_per_frame_reads_read_only_boxes_without_a_warning() -> None:
    """A tracking sequence's boxes are read-only: every tracker test printed torch's "NumPy array is not writable"."""
    boxes = np.array([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 2.0, 2.0]])
    boxes.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(iou_per_frame(boxes, boxes), [1.0, 1.0])


def test_iou_per_frame_is_paired_iou_exactly_where_both_boxes_are_boxes() -> None:
    rng = np.random.default_rng(1)
    truth = np.c_[rng.uniform(0, 50, (500, 2)), rng.uniform(1, 30, (500, 2))]
    predicted = truth + rng.normal(0, 5, truth.shape)
    predicted[:, 2:] = np.abs(predicted[:, 2:])
    expected = paired_iou(torch.from_numpy(predicted), torch.from_numpy(truth)).numpy()
    np.testing.assert_array_equal(iou_per_frame(predicted, truth), expected)


def test_absent_truth_is_nan_and_lost_prediction_scores_zero() -> None:
    truth = np.array([[0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]])
    predicted = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4])
    ious = iou_per_frame(predicted, truth)
    assert ious[0] == 1.0 and np.isnan(ious[1]) and ious[2] == 0.0
    errors = center_errors(predicted, truth)
    assert errors[0] == 0.0 and np.isnan(errors[1]) and np.isinf(errors[2])


def test_truth_without_area_is_absent_not_a_miss() -> None:
    """``0,0,0,0`` (LaSOT's, GOT-10k's mark for an absent target) and other boxes without area are left out, as NaN."""
    truth = np.array([[0, 0, 10, 10], [0, 0, 0, 0], [5, 5, 10, 0], [5, 5, -3, 10]], dtype=float)
    predicted = np.array([[0, 0, 10, 10]] * 4, dtype=float)
    assert np.isnan(iou_per_frame(predicted, truth)[1:]).all() and np.isnan(center_errors(predicted, truth)[1:]).all()
    assert score_sequence(np.r_[predicted[:1], predicted], np.r_[truth[:1], truth]).frames == 1


def test_center_error_in_pixels() -> None:
    assert center_errors(np.array([[3.0, 4.0, 10, 10]]), np.array([[0.0, 0.0, 10, 10]])) == pytest.approx([5.0])


def test_center_error_is_measured_between_centres_not_corners_of_boxes_of_different_sizes() -> None:
    """A 40x20 box at the origin has its centre at (20, 10), an 8x8 box at (13, 2) at (17, 6): 5 px apart, while
    their top-left corners are 13.2 px apart."""
    predicted, truth = np.array([[0.0, 0.0, 40, 20]]), np.array([[13.0, 2.0, 8, 8]])
    assert center_errors(predicted, truth) == pytest.approx([5.0])


def test_a_centre_exactly_20_pixels_off_counts_as_within_precision() -> None:
    """OTB's precision counts a centre error of at most 20 px; (12, 16) is 20.0 px, (21, 0) is over."""
    truth = np.array([[0, 0, 10, 10]] * 3, dtype=float)
    predicted = np.array([[0, 0, 10, 10], [12, 16, 10, 10], [21, 0, 10, 10]], dtype=float)
    assert center_errors(predicted, truth)[1] == 20.0
    assert score_sequence(predicted, truth).precision_20 == 0.5


def test_success_curve_counts_ious_strictly_above_each_threshold() -> None:
    ious = np.array([0.0, 0.5, 1.0, np.nan])
    curve = success_curve(ious)
    assert len(curve) == 21 and OVERLAP_THRESHOLDS[10] == pytest.approx(0.5)
    assert curve[0] == pytest.approx(2 / 3)  # IoU > 0: 0.5 and 1.0
    assert curve[10] == pytest.approx(1 / 3)  # IoU > 0.5: only 1.0
    assert curve[20] == 0.0  # nothing is above 1
    # 0.5 clears thresholds 0..0.45 (10 of 21), 1.0 clears 0..0.95 (20 of 21): (10 + 20) / 3 / 21.
    assert success_auc(ious) == pytest.approx(30 / 63)


def test_score_sequence_skips_the_given_first_frame_and_absent_frames() -> None:
    truth = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [30, 30, 10, 10]], dtype=float)
    predicted = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [0, 0, 10, 10], [60, 30, 10, 10]], dtype=float)
    score = score_sequence(predicted, truth)
    assert score.frames == 2
    assert score.mean_iou == pytest.approx((1 / 3 + 0.0) / 2)
    assert score.precision_20 == pytest.approx(0.5)  # 5 px: in; 30 px: out


def test_mean_scores_weigh_each_sequence_equally() -> None:
    short = SequenceScore(frames=10, mean_iou=1.0, success_auc=1.0, precision_20=1.0)
    long = SequenceScore(frames=1000, mean_iou=0.0, success_auc=0.0, precision_20=0.0)
    mean = mean_scores([short, long])
    assert mean.frames == 1010 and mean.success_auc == 0.5 and mean.mean_iou == 0.5


def test_mean_scores_average_each_score_from_its_own_field() -> None:
    first = SequenceScore(frames=4, mean_iou=0.2, success_auc=0.3, precision_20=0.5)
    second = SequenceScore(frames=6, mean_iou=0.4, success_auc=0.5, precision_20=1.0)
    assert mean_scores([first, second]) == SequenceScore(frames=10, mean_iou=pytest.approx(0.3),
                                                         success_auc=pytest.approx(0.4), precision_20=0.75)


def test_mean_scores_leave_out_a_sequence_without_a_frame_to_score() -> None:
    """A sequence whose every frame is absent scores NaN: counted in the mean, it would make every mean NaN."""
    scored = SequenceScore(frames=8, mean_iou=0.6, success_auc=0.5, precision_20=0.75)
    absent = score_sequence(np.zeros((3, 4)), np.full((3, 4), np.nan))
    assert not absent.scored
    assert mean_scores([scored, absent]) == scored
    assert not mean_scores([absent]).scored and np.isnan(mean_scores([absent]).success_auc)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="3 predicted boxes for 2 frames"):
        iou_per_frame(np.zeros((3, 4)), np.zeros((2, 4)))


def _prose(root: Path) -> dict[str, str]:
    """The project's own words: README, docs, module and benchmark sources, and the notebooks' markdown cells."""
    files = [root / "README.md", *root.glob("docs/*.md"), *root.glob("vidrnn/**/*.py"), *root.glob("benchmarks/*.py")]
    texts = {str(path.relative_to(root)): path.read_text(encoding="utf-8") for path in files}
    for notebook in root.glob("notebooks/*.ipynb"):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        texts[str(notebook.relative_to(root))] = "\n".join("".join(cell["source"]) for cell in cells
                                                           if cell["cell_type"] == "markdown")
    return texts


def test_the_scores_are_called_otb_style_never_otbs_own() -> None:
    """First and absent frames are left out and a lost target scores 0, where OTB's toolkit counts the first frame,
    counts absent frames as failures and carries a lost tracker's last box: called "OTB success AUC", the numbers
    invited comparison with published OTB tables."""
    root = Path(__file__).resolve().parents[1]
    claims = re.compile(r"\bOTB (success|scores?\b|benchmark defines)|\(OTB, ")
    found = {name: match.group(0) for name, text in _prose(root).items() if (match := claims.search(text))}
    assert found == {}

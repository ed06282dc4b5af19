"""OTB-style tracking scores: overlap (IoU), success AUC and precision at 20 pixels.

The measures and thresholds are the OTB benchmark's, the protocol is not quite its toolkit's — every rule below
that differs says so — so compare these numbers with published OTB tables only knowing that: they are "OTB-style
success AUC (first and absent frames excluded; a lost target scores 0)".

Boxes are 0-based pixel ``x, y, w, h`` rows ``[N, 4]``. Three rules decide which frames count:

* frames whose ground truth is NaN (target absent or fully occluded, as TLD marks them) or has no area (width or
  height of 0 or less: ``0,0,0,0`` is how LaSOT- and GOT-10k-style files mark an absent target) are left out of
  every score: a tracker cannot be right or wrong about a box that does not exist (got10k-toolkit's choice; OTB's
  toolkit counts such frames as failures);
* the first frame is left out, because the tracker was given its box (OTB's toolkit counts it, which lifts every
  tracker equally);
* a predicted box that is NaN (a tracker that reports itself lost) scores IoU 0 and an infinite centre error (OTB's
  toolkit carries the previous box forward instead, which can still overlap the target).

**Success AUC** is the mean, over the 21 overlap thresholds 0, 0.05, ..., 1, of the fraction of frames whose IoU is
*greater* than the threshold (OTB's success plot, whose area under the curve equals the mean IoU up to the
discretisation). **Precision at 20 px** is the fraction of frames whose predicted centre lies within 20 pixels of the
true one. Averages over several sequences are means of per-sequence scores, so a long sequence does not outweigh the
others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = [
    "OVERLAP_THRESHOLDS",
    "SequenceScore",
    "center_errors",
    "iou_per_frame",
    "mean_scores",
    "paired_iou",
    "score_sequence",
    "success_auc",
    "success_curve",
]

#: OTB's overlap thresholds for the success plot.
OVERLAP_THRESHOLDS = np.linspace(0.0, 1.0, 21)

#: OTB's precision threshold, in pixels.
PRECISION_PIXELS = 20.0


def _as_boxes(boxes: np.ndarray | Iterable) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be an [N, 4] array of x, y, w, h, got shape {array.shape}")
    return array


def _absent(truth: np.ndarray) -> np.ndarray:
    """``[N]``: frames whose true box is no box (NaN, or no area)."""
    return ~((truth[:, 2] > 0) & (truth[:, 3] > 0)) | np.isnan(truth[:, :2]).any(axis=1)


def paired_iou(boxes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of each ``x, y, w, h`` box ``[..., 4]`` with the target in the same place, ``[...]``; 0 where the union
    has no area.

    Element-wise, as the tracker's training metrics and its scores want it: ``torchvision.ops.box_iou`` compares
    every box with every target, quadratic in the length of a sequence, and torchvision has no element-wise IoU.
    """
    left = torch.maximum(boxes[..., 0], targets[..., 0])
    top = torch.maximum(boxes[..., 1], targets[..., 1])
    right = torch.minimum(boxes[..., 0] + boxes[..., 2], targets[..., 0] + targets[..., 2])
    bottom = torch.minimum(boxes[..., 1] + boxes[..., 3], targets[..., 1] + targets[..., 3])
    intersection = (right - left).clamp(min=0) * (bottom - top).clamp(min=0)
    union = boxes[..., 2] * boxes[..., 3] + targets[..., 2] * targets[..., 3] - intersection
    return torch.where(union > 0, intersection / union, 0.0)


def iou_per_frame(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """:func:`paired_iou` of each predicted box with the true box of the same frame, ``[N]``; NaN where the truth is
    absent (NaN, or no area). A prediction that is NaN or has no area scores 0.
    """
    predicted, truth = _as_boxes(predicted), _as_boxes(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"{len(predicted)} predicted boxes for {len(truth)} frames")
    iou = paired_iou(torch.tensor(predicted), torch.tensor(truth)).numpy()  # copies: sequences' boxes are read-only
    iou = np.where(np.isnan(predicted).any(axis=1), 0.0, iou)
    return np.where(_absent(truth), np.nan, iou)


def center_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance in pixels between predicted and true box centres, ``[N]``; NaN where the truth is absent (NaN, or
    no area)."""
    predicted, truth = _as_boxes(predicted), _as_boxes(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"{len(predicted)} predicted boxes for {len(truth)} frames")
    offset = (predicted[:, :2] + predicted[:, 2:] / 2) - (truth[:, :2] + truth[:, 2:] / 2)
    error = np.hypot(offset[:, 0], offset[:, 1])
    error = np.where(np.isnan(predicted).any(axis=1), np.inf, error)
    return np.where(_absent(truth), np.nan, error)


def success_curve(ious: np.ndarray) -> np.ndarray:
    """Fraction of frames with IoU above each of :data:`OVERLAP_THRESHOLDS` (NaN frames ignored)."""
    valid = ious[~np.isnan(ious)]
    if len(valid) == 0:
        return np.full(len(OVERLAP_THRESHOLDS), np.nan)
    return (valid[None, :] > OVERLAP_THRESHOLDS[:, None]).mean(axis=1)


def success_auc(ious: np.ndarray) -> float:
    """Area under the success curve: the mean of :func:`success_curve`."""
    return float(success_curve(ious).mean())


@dataclass(frozen=True)
class SequenceScore:
    """The scores of one tracked sequence, over the frames that count (see the module notes)."""

    frames: int
    mean_iou: float
    success_auc: float
    precision_20: float

    @property
    def scored(self) -> bool:
        """Whether any frame counted: a sequence without one has no score (NaN) and stays out of means."""
        return self.frames > 0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def score_sequence(predicted: np.ndarray, truth: np.ndarray) -> SequenceScore:
    """Score one sequence's predicted boxes against its ground truth, its first frame left out."""
    ious, errors = iou_per_frame(predicted, truth)[1:], center_errors(predicted, truth)[1:]
    counted = ~np.isnan(ious)
    if not counted.any():
        return SequenceScore(0, float("nan"), float("nan"), float("nan"))
    return SequenceScore(
        frames=int(counted.sum()),
        mean_iou=float(ious[counted].mean()),
        success_auc=success_auc(ious),
        precision_20=float((errors[counted] <= PRECISION_PIXELS).mean()),
    )


def mean_scores(scores: Iterable[SequenceScore]) -> SequenceScore:
    """The mean of per-sequence scores (each sequence weighs the same; those without a score left out); ``frames``
    is their total."""
    scores = [score for score in scores if score.scored]
    if not scores:
        return SequenceScore(0, float("nan"), float("nan"), float("nan"))
    return SequenceScore(
        frames=sum(score.frames for score in scores),
        mean_iou=float(np.mean([score.mean_iou for score in scores])),
        success_auc=float(np.mean([score.success_auc for score in scores])),
        precision_20=float(np.mean([score.precision_20 for score in scores])),
    )

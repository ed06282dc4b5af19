"""Score trackers on whole annotated sequences: one code path for ``vidrnn test`` and the benchmarks.

Every tracker gets the first frame's true box and nothing else, frames stream from the decoder, and the boxes are
scored with :mod:`vidrnn.metrics` (OTB-style: the given first frame and absent-target frames excluded, a lost target
scoring 0; means over sequences, each sequence weighing the same). Speed is the tracker's own: the time spent
decoding frames is measured and subtracted.

A sequence whose frames cannot be read as its boxes need them (a damaged stretch, frames that change size midway), or
whose first box the tracker refuses (outside the frame where its size was not known before), is found only when
tracking reaches it: :func:`sequence_rows` names it and goes on with the others, so the sequences
tracked before it are not lost; :func:`evaluate`, for the benchmarks, refuses to average without it.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vidrnn.data.tracking_sequences import MEAN_ROW, TrackingSequence
from vidrnn.metrics import SequenceScore, mean_scores, score_sequence
from vidrnn.tracker.geometry import UntrackableBox
from vidrnn.video import VideoReadError

__all__ = [
    "ScoreRow", "SequenceRows", "TrackFunction", "Unscored", "evaluate", "opencv_tracker", "sequence_rows",
    "summary_lines", "track_timed", "unscored_text", "with_means", "write_scores",
]

logger = logging.getLogger(__name__)

#: Anything that turns frames and a first box into one box per frame: ``Tracker.track``, an OpenCV wrapper, ...
TrackFunction = Callable[[Iterator[np.ndarray], np.ndarray], Iterable[np.ndarray]]


def opencv_tracker(create: Callable[[], cv2.Tracker]) -> TrackFunction:
    """One of OpenCV's trackers (``cv2.TrackerMIL_create``, contrib's CSRT, ...) as a track function, for the
    classical baselines of the benchmarks and the tracking notebook: a fresh tracker per sequence, BGR frames and an
    integer first box as OpenCV takes them, and NaN where it reports the target lost (which scores IoU 0)."""

    def track(frames: Iterator[np.ndarray], box: np.ndarray) -> Iterator[np.ndarray]:
        tracker = create()
        tracker.init(cv2.cvtColor(next(frames), cv2.COLOR_RGB2BGR), tuple(int(round(value)) for value in box))
        yield np.asarray(box, dtype=np.float64)
        for frame in frames:
            found, estimate = tracker.update(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            yield np.asarray(estimate, dtype=np.float64) if found else np.full(4, np.nan)

    return track


@dataclass(frozen=True)
class ScoreRow:
    """One tracker's scores on one sequence (``sequence == MEAN_ROW``, "MEAN": the mean over sequences)."""

    sequence: str
    tracker: str
    score: SequenceScore
    frames_per_second: float

    def to_dict(self) -> dict[str, object]:
        return {"sequence": self.sequence, "tracker": self.tracker, **self.score.to_dict(),
                "frames_per_second": round(self.frames_per_second, 2)}


@dataclass(frozen=True)
class Unscored:
    """A sequence that could not be tracked to its end, so has no score: its name in the rows and why."""

    sequence: str
    reason: str


@dataclass(frozen=True)
class SequenceRows:
    """What :func:`sequence_rows` made: a row per tracker and scored sequence, and the sequences it could not score."""

    rows: list[ScoreRow] = field(default_factory=list)
    unscored: list[Unscored] = field(default_factory=list)


def _frames(sequence: TrackingSequence, decoding: list[float]) -> Iterator[np.ndarray]:
    """The sequence's frames, adding the time spent decoding them to ``decoding[0]`` (to subtract it)."""
    chunks = sequence.iter_frames(chunk_size=16)
    while True:
        start = time.perf_counter()
        item = next(chunks, None)
        decoding[0] += time.perf_counter() - start
        if item is None:
            return
        yield from item[1]


def track_timed(track: TrackFunction, sequence: TrackingSequence) -> tuple[np.ndarray, float]:
    """Boxes ``[N,4]`` from ``track`` over the sequence, and its frames per second with decoding excluded."""
    decoding = [0.0]
    start = time.perf_counter()
    boxes = np.array([np.asarray(box, dtype=np.float64) for box in track(_frames(sequence, decoding),
                                                                         sequence.boxes[0].copy())])
    elapsed = time.perf_counter() - start - decoding[0]
    return boxes, len(boxes) / max(elapsed, 1e-9)


def _scored(trackers: Mapping[str, TrackFunction], sequence: TrackingSequence, label: str) -> list[ScoreRow]:
    """Every tracker on one sequence, a row each, named ``label``."""
    rows = []
    for name, track in trackers.items():
        boxes, speed = track_timed(track, sequence)
        row = ScoreRow(label, name, score_sequence(boxes, sequence.boxes), speed)
        logger.info("%s %s: success AUC %.3f, P@20 %.3f, %.1f frames/s", label, name, row.score.success_auc,
                    row.score.precision_20, speed)
        rows.append(row)
    return rows


def sequence_rows(trackers: Mapping[str, TrackFunction], sequences: Sequence[TrackingSequence],
                  progress: bool = True, root: Path | None = None) -> SequenceRows:
    """Every tracker on every sequence: one row each, by sequence, then tracker; a sequence is named by its path under
    ``root`` where given (:meth:`TrackingSequence.name_under`: two of one name in other folders stay apart), else by
    its name. A sequence whose frames cannot be read, or whose first box a tracker refuses, is said (a warning naming
    it and why) and left unscored, for every tracker, while the others are tracked."""
    made = SequenceRows()
    for sequence in tqdm(sequences, desc="tracking", unit="sequence", disable=not progress):
        label = sequence.name if root is None else sequence.name_under(root)
        try:
            made.rows.extend(_scored(trackers, sequence, label))
        except (VideoReadError, UntrackableBox) as error:
            logger.warning("%s: not scored: %s", label, error)
            made.unscored.append(Unscored(label, str(error)))
    return made


def with_means(rows: Sequence[ScoreRow]) -> list[ScoreRow]:
    """``rows`` followed by one ``MEAN`` row per tracker (each sequence weighing the same; median speed)."""
    trackers = list(dict.fromkeys(row.tracker for row in rows))
    means = []
    for name in trackers:
        own = [row for row in rows if row.tracker == name]
        means.append(ScoreRow(MEAN_ROW, name, mean_scores(row.score for row in own),
                              float(np.median([row.frames_per_second for row in own]))))
    return [*rows, *means]


def evaluate(trackers: Mapping[str, TrackFunction], sequences: Sequence[TrackingSequence],
             progress: bool = True, root: Path | None = None) -> list[ScoreRow]:
    """Every tracker on every sequence, then one ``MEAN`` row per tracker (median speed over sequences). A sequence
    that could not be tracked raises :class:`ValueError` naming each such and why, once the others are tracked: a
    mean without it would be a smaller benchmark's."""
    made = sequence_rows(trackers, sequences, progress, root)
    if made.unscored:
        raise ValueError(f"{len(made.unscored)} of {len(sequences)} sequences not scored: "
                         f"{unscored_text(made.unscored)}; fix or remove them to score the benchmark")
    return with_means(made.rows)


def unscored_text(unscored: Iterable[Unscored]) -> str:
    """The sequences that could not be scored and why, in a line."""
    return "; ".join(f"{item.sequence}: {item.reason}" for item in unscored)


def summary_lines(rows: Sequence[ScoreRow]) -> list[str]:
    """One line per tracker from its ``MEAN`` row, counting the sequences that mean averages: a sequence without a
    frame to score is not in it, and the line says how many such there were rather than count them."""
    lines = []
    for mean in (row for row in rows if row.sequence == MEAN_ROW):
        own = [row.score for row in rows if row.tracker == mean.tracker and row.sequence != MEAN_ROW]
        scored = sum(score.scored for score in own)
        unscored = f"; {len(own) - scored} without a frame to score, not in the mean" if scored < len(own) else ""
        score = mean.score
        lines.append(f"{mean.tracker:10s} success AUC {score.success_auc:.3f}  P@20 {score.precision_20:.3f}  "
                     f"mean IoU {score.mean_iou:.3f}  ({scored} sequences, {score.frames} frames{unscored})")
    return lines


def write_scores(rows: Sequence[ScoreRow], path: Path) -> None:
    """The rows as CSV (one per tracker and sequence, then the means)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0].to_dict()))
        writer.writeheader()
        writer.writerows(row.to_dict() for row in rows)

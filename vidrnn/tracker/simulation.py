"""Training data for a tracker's head: the evidence of simulated tracking runs over annotated frames.

The head never sees pixels: its input per frame is the evidence of one template search. The frozen CNN and the
matcher have no trainable parameters, so evidence can be computed once and cached, exactly like classification's
frame features: the CNN runs once per (frame, simulated run), and every training epoch afterwards costs milliseconds.

A simulated run is what an online tracker would see. Run 0 *is* the matching tracker, online — the same loop
(:class:`~vidrnn.tracker.search.MatchingRun`) that tracks at run time, each search placed where its previous answer
was — so the data holds the drifting, half-lost states a real run visits. The other runs search around the
**previous** frame's true box disturbed by a smooth random error (an AR(1) walk in position and log-scale), because a
tracker's last estimate is never exact and its errors persist for several frames. Targets are the true boxes in each
search crop's normalised coordinates; frames whose ground truth is NaN (target absent), or whose target lies outside
the search region, are masked out of the loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from vidrnn.tracker.matching import EVIDENCE_DIM
from vidrnn.tracker.search import MatchingSearch

__all__ = ["ERROR_PERSISTENCE", "EvidenceRuns", "simulate_runs"]

#: Strength of the simulated error's memory from one frame to the next (AR(1) coefficient).
ERROR_PERSISTENCE = 0.7


@dataclass(frozen=True)
class EvidenceRuns:
    """Simulated runs over one sequence: ``evidence [W, N-1, EVIDENCE_DIM]``, ``targets [W, N-1, 4]`` and
    ``valid [W, N-1]`` (the step counts in the loss) for frames 1..N-1 under ``W`` simulated trackers; ``windows
    [W, N-1, 3]`` (centre x, y and side of each search region, frame pixels) and ``frame_size`` (height, width) turn
    a head's crop-normalised boxes back into frame boxes: run 0 is the matching tracker online, so a head's boxes on
    it are exactly what the tracker reports, and whole sequences can be scored without running the CNN again."""

    name: str
    evidence: np.ndarray
    targets: np.ndarray
    valid: np.ndarray
    windows: np.ndarray
    frame_size: np.ndarray

    @property
    def steps(self) -> int:
        return self.evidence.shape[1]


def _last_visible(boxes: np.ndarray, index: int) -> np.ndarray:
    """The latest box at or before ``index`` that is not NaN (the last place the target was seen)."""
    for position in range(index, -1, -1):
        if not np.isnan(boxes[position]).any():
            return boxes[position]
    raise ValueError("no visible box at or before frame index %d" % index)


def _error_walks(rng: np.random.Generator, walks: int, steps: int, position: float, scale: float) -> np.ndarray:
    """``[walks, steps, 3]`` smooth errors: centre offset in target sizes (x, y), then log-scale."""
    spread = np.array([position, position, scale])
    errors = np.empty((walks, steps, 3))
    state = rng.normal(0.0, spread, size=(walks, 3))
    for step in range(steps):
        errors[:, step] = state
        state = ERROR_PERSISTENCE * state + rng.normal(0.0, spread * np.sqrt(1 - ERROR_PERSISTENCE**2), (walks, 3))
    return errors


def _disturbed(box: np.ndarray, error: np.ndarray) -> np.ndarray:
    """``box`` moved by ``error`` (centre offset in target sizes, log-scale)."""
    size = np.sqrt(box[2] * box[3])
    centre = box[:2] + box[2:] / 2 + error[:2] * size
    scaled = box[2:] * np.exp(error[2])
    return np.r_[centre - scaled / 2, scaled]


@torch.no_grad()
def simulate_runs(
    search: MatchingSearch,
    name: str,
    frames: Iterable[np.ndarray],
    truth: np.ndarray,
    walks: int,
    rng: np.random.Generator,
    position_jitter: float,
    scale_jitter: float,
) -> EvidenceRuns:
    """Search every frame of a sequence (``frames``, streamed; ``truth [N,4]``, NaN = absent, the first visible) as
    ``walks`` simulated trackers would.

    Run 0 is the matching tracker itself, online: each search goes where its previous answer was, so the runs contain
    the states a drifting tracker really visits (a head trained only around true boxes never sees them and, online,
    compounds its first mistakes). Runs 1.. search around the previous true box moved by a smooth error walk, each
    keeping its own template and updating it (at ``template_rate``) at the box it searched around — so the evidence
    carries the template drift the tracker will live with. A step counts (``valid``) when the target is visible and
    its centre lies inside the search region: when the search missed the target entirely, no evidence could say where
    it went.
    """
    errors = _error_walks(rng, walks, len(truth), position_jitter, scale_jitter)
    steps = len(truth) - 1
    evidence = np.zeros((walks, steps, EVIDENCE_DIM), dtype=np.float32)
    targets = np.zeros((walks, steps, 4), dtype=np.float32)
    valid = np.zeros((walks, steps), dtype=bool)
    windows = np.zeros((walks, steps, 3), dtype=np.float64)
    frames = iter(frames)
    first = next(frames)
    matching = search.start(first, truth[0])
    templates = [matching.template] * (walks - 1)
    for index, frame in enumerate(frames, start=1):
        if index > steps:
            break
        previous = _last_visible(truth, index - 1)
        guesses = [_disturbed(previous, errors[walk, index]) for walk in range(1, walks)]
        # Run 0 is searched on its own: the CNN's arithmetic can depend on the batch, and run 0 must be exactly the
        # tracker's own run (validation scores whole sequences from it).
        results = [matching.step(frame)]
        if guesses:
            results += search.search([frame] * len(guesses), guesses, torch.cat(templates))
        box = truth[index]
        for walk, result in enumerate(results):
            evidence[walk, index - 1] = result.evidence.cpu().numpy()
            windows[walk, index - 1] = result.window.cx, result.window.cy, result.window.side
            target = result.window.box_to_crop(np.nan_to_num(box))
            targets[walk, index - 1] = target
            centre = target[:2] + target[2:] / 2
            valid[walk, index - 1] = not np.isnan(box).any() and bool(((centre > 0) & (centre < 1)).all())
        templates = [search.updated_template(template, result, guess)
                     for template, result, guess in zip(templates, results[1:], guesses)]
    return EvidenceRuns(name, evidence, targets, valid, windows, np.array(first.shape[:2]))

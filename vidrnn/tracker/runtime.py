"""Run a tracker over a clip: the first frame's box in, one box per frame out.

:class:`Tracker` is the matching tracker (:class:`~vidrnn.tracker.search.MatchingSearch`) plus, optionally, a trained
:class:`~vidrnn.tracker.head.RecurrentBoxHead`:

* **online** (no head, or a unidirectional head): each frame's box is final at once. Frames stream through
  :meth:`Tracker.track`, a generator, so memory does not grow with the video's length and a live source works too.
* **offline** (a bidirectional head): the head needs the whole clip before it can answer. It keeps each frame's small
  evidence vector (a few dozen numbers, never the frames); the head then reads the evidence in both directions and
  the boxes come out at the end.

In both, the matching tracker steers: each search is placed around the previous frame's matching box, and the template
is updated there; the head reads the evidence and reports its box without moving the next search. That is the
trajectory the head was trained on (run 0 of :func:`~vidrnn.tracker.simulation.simulate_runs`), and it keeps the
head's small errors from compounding: when the head's own boxes placed the searches, the trained head fell below
the matching-only tracker on generated validation sequences (0.592 against 0.753 success AUC) although it improved
on it window by window; reporting beside the matching tracker it scored 0.780.

Without a head the tracker is the matching-only ablation.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from vidrnn.devices import resolve_device
from vidrnn.models.tracker_module import FrameTracker, load_frame_tracker
from vidrnn.tracker.geometry import clamp_to_frame, validate_box
from vidrnn.tracker.head import RecurrentBoxHead
from vidrnn.tracker.search import MatchingSearch, SearchResult
from vidrnn.tracker.settings import TrackerSettings

__all__ = ["Tracker", "load_tracker", "trained_tracker"]


class Tracker:
    """The matching tracker (+ an optional trained head) that follows one target through a clip."""

    def __init__(self, search: MatchingSearch, head: RecurrentBoxHead | None = None,
                 redetect_below: float = 0.0) -> None:
        if head is not None and head.rule != search.settings.rule:
            raise ValueError(f"the head was trained to correct the matching answer of {head.rule}; this tracker "
                             f"answers with {search.settings.rule}")
        if redetect_below > 0 and (head is None or head.confidence is None or head.bidirectional):
            raise ValueError("redetect_below needs an online head trained with confidence (model.confidence: true)")
        self.search = search
        self.head = head.to(search.device).eval() if head is not None else None
        self.redetect_below = redetect_below

    @classmethod
    def build(cls, settings: TrackerSettings, head: RecurrentBoxHead | None = None,
              device: str | torch.device = "cpu", **options: float) -> Tracker:
        """A tracker with its own frozen CNN, built from ``settings`` (``options``: ``redetect_below``, ...)."""
        return cls(MatchingSearch(settings, device), head, **options)

    @property
    def settings(self) -> TrackerSettings:
        return self.search.settings

    @property
    def online(self) -> bool:
        """Whether boxes come out frame by frame (False: a bidirectional head answers at the end of the clip)."""
        return self.head is None or not self.head.bidirectional

    @torch.no_grad()
    def track(self, frames: Iterable[np.ndarray], box: Iterable[float]) -> Iterator[np.ndarray]:
        """Yield ``x, y, w, h`` (float64) for every frame of ``frames`` (RGB uint8), starting with ``box`` itself."""
        frames = iter(frames)
        first = next(frames, None)
        if first is None:
            return
        box = validate_box(box, first.shape)
        yield box.copy()
        if self.redetect_below > 0:
            yield from self._track_steering(first, box, frames)
            return
        steps = self.search.steps(first, box, frames)
        yield from self._track_online(steps) if self.online else self._track_offline(steps)

    def _track_online(self, steps: Iterator[SearchResult]) -> Iterator[np.ndarray]:
        state = None
        for step in steps:
            if self.head is None:
                yield step.matching_box.copy()
                continue
            crop_box, state = self.head(step.evidence[None, None], state)
            yield clamp_to_frame(step.window.box_from_crop(crop_box[0, 0].cpu().numpy()), step.frame_shape)

    def _track_steering(self, first: np.ndarray, box: np.ndarray, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Online, with the head's belief steering: when its confidence that the matching box is on the target falls
        below ``redetect_below``, the next frame is searched in the re-detection region (``redetect_widen`` times
        wider); that frame's answer is the matching box found there, and the head reads normal searches only."""
        run, state, doubt = self.search.start(first, box), None, False
        for frame in frames:
            widen = self.settings.redetect_widen if doubt else run.widen
            step = run.step(frame, widen)
            if widen > 1:
                doubt = False
                yield step.matching_box.copy()
                continue
            crop_box, logit, state = self.head.read(step.evidence[None, None], state)
            doubt = bool(torch.sigmoid(logit[0, 0]) < self.redetect_below)
            yield clamp_to_frame(step.window.box_from_crop(crop_box[0, 0].cpu().numpy()), step.frame_shape)

    def _track_offline(self, steps: Iterator[SearchResult]) -> Iterator[np.ndarray]:
        kept = []
        for step in steps:
            step.maps = None  # the clip's evidence is kept until the head answers; its maps are not
            kept.append(step)
        if not kept:
            return
        crop_boxes, _ = self.head(torch.stack([step.evidence for step in kept])[None])
        for step, crop_box in zip(kept, crop_boxes[0].cpu().numpy()):
            yield clamp_to_frame(step.window.box_from_crop(crop_box), step.frame_shape)


#: What to do when a head is asked to track with settings other than its own.
_KEEP_SETTINGS = ("track with the settings it was trained with, or leave its head out (matching_only; "
                  "vidrnn track --matching-only)")


def trained_tracker(model: FrameTracker, search: MatchingSearch, redetect_below: float | None = None) -> Tracker:
    """The tracker a trained ``FrameTracker`` stands for, searching with ``search``: its head, and the re-detection
    threshold it was saved with (``redetect_below`` overrides it: it steers searches, it makes no evidence). ``search``
    must search as the head was trained to read (every tracker setting; a ``ValueError`` names those that differ).
    ``vidrnn track``, ``vidrnn test`` and the benchmarks all build it here, so each scores the tracker the others
    run."""
    model.settings.check_head_reads(search.settings, _KEEP_SETTINGS)
    if redetect_below is None:
        redetect_below = model.hparams.get("redetect_below", 0.0)
    return Tracker(search, model.head, redetect_below=redetect_below)


def load_tracker(ckpt: str | os.PathLike | None, *, matching_only: bool = False, device: str = "auto",
                 template_rate: float | None = None, redetect_below: float | None = None) -> Tracker:
    """A :class:`Tracker` from a ``FrameTracker`` checkpoint (:func:`trained_tracker`), or the untrained matching
    tracker with default settings when ``ckpt`` is ``None`` (the default of ``vidrnn track``). ``matching_only`` leaves
    the checkpoint's head out (its settings stay); ``template_rate`` overrides the template update rate — refused
    (``ValueError``, before the CNN is built) where a head would read the evidence it makes, since the head learnt
    from evidence made at its own rate — and ``redetect_below`` the confidence below which the next search is
    widened."""
    model = None if ckpt is None else load_frame_tracker(ckpt)
    settings = TrackerSettings() if model is None else model.settings
    if template_rate is not None:
        settings = dataclasses.replace(settings, template_rate=template_rate)
    if model is not None and not matching_only:
        model.settings.check_head_reads(settings, _KEEP_SETTINGS)
    search = MatchingSearch(settings, resolve_device(device))
    if model is None or matching_only:
        return Tracker(search)
    return trained_tracker(model, search, redetect_below)

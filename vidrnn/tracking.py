"""Run a tracker over a clip: the first frame's box in, one box per frame out.

:class:`Tracker` ties the pieces together — search regions (:mod:`vidrnn.search_region`), the frozen CNN, the
template matcher and, optionally, a trained :class:`~vidrnn.models.tracker.RecurrentBoxHead`:

* **online** (no head, or a unidirectional head): each frame's box is final at once. Frames stream through
  :meth:`Tracker.track`, a generator, so memory does not grow with the video's length and a live source works too.
* **offline** (a bidirectional head): the head needs the whole clip before it can answer. It keeps each frame's small
  evidence vector (a few hundred numbers, never the frames); the head then reads the evidence in both directions and
  the boxes come out at the end.

In both, the matching tracker steers: each search is placed around the previous frame's matching box, and the template
is updated there; the head reads the evidence and reports its box without moving the next search. That is the
trajectory the head was trained on (run 0 of :func:`~vidrnn.data.tracking_module.simulate_runs`), and it keeps the
head's small errors from compounding: when the head's own boxes placed the searches, the trained head fell below
the matching-only tracker on generated validation sequences (0.592 against 0.753 success AUC) although it improved
on it window by window; reporting beside the matching tracker it scored 0.780.

Without a head the tracker is the matching-only ablation: the box moves to the response's peak, and its size follows
the best-matching scale at ``scale_rate`` (0: it keeps the first frame's size).

``scale_rate`` lets the matching-only box change size: each frame its size moves that fraction (in log) towards the
scale at which the template matches best around the peak (one of :data:`~vidrnn.models.tracker.SCALES`, as SiamFC's
damped scale search); at 0 it keeps the first frame's size.

``hold_below`` keeps the search still while the target is probably hidden: when the response's peak stands less
than that many standard deviations above its mean (:func:`~vidrnn.models.tracker.peak_sharpness`; MOSSE's
peak-to-sidelobe test), the matching box stays where it was — no move, no resize, no template update — instead of
jumping to whatever resembles the target best, often the occluder, which it then follows away. The search waits
where the target was last seen; when it comes out again the peak is sharp once more. The trained head is told the
same rule, and while the search is held it answers from its memory of the target's motion (see
:class:`~vidrnn.models.tracker.RecurrentBoxHead`).

``template_rate`` lets the template follow slow appearance change (light, pose): after each frame the template becomes
``(1 - rate) x template + rate x`` the appearance inside the new box, pooled from the same search map — the linear
update of correlation-filter trackers. At 0 (the default) the first frame's template is kept for the whole clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from vidrnn.backbones import FrozenBackbone
from vidrnn.models.tracker import RecurrentBoxHead, TemplateMatcher, best_scale, match_evidence, peak_sharpness
from vidrnn.search_region import SearchGeometry, SearchWindow, crop_window

__all__ = ["SearchResult", "Tracker", "validate_box", "within_frame"]


def validate_box(box: Iterable[float], frame_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The initial box as float64 ``x, y, w, h``, refused early with a reason if it cannot be tracked."""
    box = np.asarray(list(box), dtype=np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"the first box must be 4 finite numbers x, y, w, h; got {box.tolist()}")
    if box[2] < 2 or box[3] < 2:
        raise ValueError(f"the first box must be at least 2x2 pixels; got w={box[2]}, h={box[3]}")
    if frame_shape is not None:
        height, width = frame_shape[:2]
        if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
            raise ValueError(f"the first box {box.tolist()} lies outside the {width}x{height} frame")
    return box


def within_frame(box: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """The box with its size kept between 2 pixels and the frame's: a box larger than the frame means nothing."""
    height, width = frame_shape[:2]
    return np.r_[box[:2], np.clip(box[2], 2.0, width), np.clip(box[3], 2.0, height)]


@dataclass
class SearchResult:
    """One frame's search: where it looked (``window``), the head's input (``evidence [F]``), the matching-only
    answer in frame pixels (``matching_box``: the response's peak with the searched-for size moved by ``scale_rate``,
    or — ``held`` — the searched-for box itself, the peak being too weak to trust); ``maps`` ``[1,C,H,W]`` is the
    crop's feature map (to update the template from)."""

    window: SearchWindow
    evidence: torch.Tensor
    matching_box: np.ndarray
    held: bool
    frame_shape: tuple[int, ...]
    maps: torch.Tensor | None


class Tracker:
    """A frozen backbone + template matcher (+ an optional trained head) that follows one target through a clip."""

    def __init__(
        self,
        backbone: FrozenBackbone,
        geometry: SearchGeometry,
        matcher: TemplateMatcher,
        head: RecurrentBoxHead | None = None,
        device: str | torch.device = "cpu",
        template_rate: float = 0.0,
        scale_rate: float = 0.0,
        hold_below: float = 0.0,
    ) -> None:
        if backbone.spec.pooling != "map":
            raise ValueError("a tracker needs spatial feature maps: build its backbone with pooling='map'")
        if not 0.0 <= template_rate < 1.0:
            raise ValueError(f"template_rate must be in [0, 1), got {template_rate}")
        if not 0.0 <= scale_rate <= 1.0:
            raise ValueError(f"scale_rate must be in [0, 1], got {scale_rate}")
        if hold_below < 0.0:
            raise ValueError(f"hold_below must be >= 0 (0: never hold the search), got {hold_below}")
        if head is not None and (head.scale_rate, head.hold_below) != (scale_rate, hold_below):
            raise ValueError(f"the head was trained to correct a matching box with scale_rate={head.scale_rate} and "
                             f"hold_below={head.hold_below}; this tracker uses {scale_rate} and {hold_below}")
        self.template_rate, self.scale_rate, self.hold_below = template_rate, scale_rate, hold_below
        self.device = torch.device(device)
        self.backbone = backbone.to(self.device)
        self.geometry = geometry
        self.matcher = matcher.to(self.device)
        self.head = head.to(self.device).eval() if head is not None else None

    @property
    def online(self) -> bool:
        """Whether boxes come out frame by frame (False: a bidirectional head answers at the end of the clip)."""
        return self.head is None or not self.head.bidirectional

    @torch.no_grad()
    def template(self, frame: np.ndarray, box: np.ndarray) -> torch.Tensor:
        """The target's appearance ``[1,C,rows,cols]`` (shaped like its box): the CNN map of its search crop, pooled inside its box."""
        window = self.geometry.window(box)
        crop = crop_window(frame, window, self.geometry.size)
        maps = self.backbone(self.backbone.preprocess(crop[None]).to(self.device))
        crop_box = torch.tensor(window.box_to_crop(box)[None], dtype=maps.dtype, device=self.device)
        return self.matcher.template(maps, crop_box)

    @torch.no_grad()
    def search(self, frames: list[np.ndarray], boxes: list[np.ndarray], template: torch.Tensor) -> list[SearchResult]:
        """Search each frame around the matching box (the previous estimate), in one CNN batch."""
        windows = [self.geometry.window(box) for box in boxes]
        crops = np.stack([crop_window(frame, window, self.geometry.size) for frame, window in zip(frames, windows)])
        maps = self.backbone(self.backbone.preprocess(crops).to(self.device))
        sizes = torch.tensor(np.array([box[2:] / window.side for box, window in zip(boxes, windows)]),
                             dtype=maps.dtype, device=self.device)
        evidence = match_evidence(self.matcher, maps, template.expand(len(frames), -1, -1, -1), sizes)
        positions = evidence[:, :2].cpu().numpy()
        size_factors = (best_scale(evidence) ** self.scale_rate).cpu().numpy()
        held = (peak_sharpness(evidence) < self.hold_below).cpu().numpy()
        results = []
        for index, (frame, window, box, row, position) in enumerate(zip(frames, windows, boxes, evidence, positions)):
            if held[index]:
                matching_box = np.asarray(box, dtype=np.float64).copy()
            else:
                centre = window.box_from_crop(np.r_[position, 0.0, 0.0])[:2]
                size = box[2:] * size_factors[index]
                matching_box = np.r_[centre - size / 2, size]
            results.append(SearchResult(window, row, matching_box, bool(held[index]), frame.shape,
                                        maps[index:index + 1]))
        return results

    @torch.no_grad()
    def updated_template(self, template: torch.Tensor, step: SearchResult, box: np.ndarray) -> torch.Tensor:
        """``template`` moved by ``template_rate`` towards the appearance inside ``box`` (frame pixels) in ``step``;
        unchanged while the search is held (what is at the box then is probably not the target)."""
        if self.template_rate == 0.0 or step.held:
            return template
        crop_box = torch.tensor(step.window.box_to_crop(box)[None], dtype=step.maps.dtype, device=self.device)
        return torch.lerp(template, self.matcher.template(step.maps, crop_box, template.shape[-2:]), self.template_rate)

    @torch.no_grad()
    def track(self, frames: Iterable[np.ndarray], box: Iterable[float]) -> Iterator[np.ndarray]:
        """Yield ``x, y, w, h`` (float64) for every frame of ``frames`` (RGB uint8), starting with ``box`` itself."""
        frames = iter(frames)
        first = next(frames, None)
        if first is None:
            return
        box = validate_box(box, first.shape)
        yield box.copy()
        steps = self.matching_steps(first, box, frames)
        yield from self._track_online(steps) if self.online else self._track_offline(steps)

    @torch.no_grad()
    def matching_steps(
        self, first: np.ndarray, box: np.ndarray, frames: Iterable[np.ndarray]
    ) -> Iterator[SearchResult]:
        """The matching tracker's search of each frame after ``first`` (whose target is at ``box``): each placed
        around the previous matching box, which then moves to this frame's (``step.matching_box``, kept inside the
        frame) unless the search is held, and the template updated there. Every tracker — with a head or without —
        runs this loop; a head only reads its evidence."""
        template = self.template(first, box)
        for frame in frames:
            step = self.search([frame], [box], template)[0]
            box = step.matching_box = within_frame(step.matching_box, frame.shape)
            template = self.updated_template(template, step, box)
            yield step

    def _track_online(self, steps: Iterator[SearchResult]) -> Iterator[np.ndarray]:
        state = None
        for step in steps:
            if self.head is None:
                yield step.matching_box.copy()
                continue
            crop_box, state = self.head(step.evidence[None, None], state)
            yield within_frame(step.window.box_from_crop(crop_box[0, 0].cpu().numpy()), step.frame_shape)

    def _track_offline(self, steps: Iterator[SearchResult]) -> Iterator[np.ndarray]:
        kept = []
        for step in steps:
            step.maps = None  # the clip's evidence is kept until the head answers; its maps are not
            kept.append(step)
        if not kept:
            return
        crop_boxes, _ = self.head(torch.stack([step.evidence for step in kept])[None])
        for step, crop_box in zip(kept, crop_boxes[0].cpu().numpy()):
            yield within_frame(step.window.box_from_crop(crop_box), step.frame_shape)

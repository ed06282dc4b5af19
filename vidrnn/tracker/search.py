"""The matching tracker: search a frame around a box, answer by the matching rule, carry box and template on.

Everything here is frozen — the CNN, the template matching, the rule — so it serves twice: the runtime tracker runs
it frame by frame (:mod:`vidrnn.tracker.runtime`) and training runs the very same loop to cache evidence
(:mod:`vidrnn.tracker.simulation`). The loop's state is a :class:`MatchingRun` (where the matching box is, what the
template looks like); :meth:`MatchingRun.advance` is the one place that state moves, so the searches a head is trained
on are the searches it reads when it tracks.

``template_rate`` lets the template follow slow appearance change (light, pose): after each frame the template becomes
``(1 - rate) x template + rate x`` the appearance inside the new box, pooled from the same search map — the linear
update of correlation-filter trackers. At 0 the first frame's template is kept for the whole clip. While the search
is held (the peak too weak to trust, :class:`~vidrnn.tracker.matching.MatchingRule`) the box and the template stay as
they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from vidrnn.backbones import FrozenBackbone, build_backbone
from vidrnn.tracker.geometry import SearchWindow, clamp_to_frame, crop_window
from vidrnn.tracker.matching import Evidence, TemplateMatcher, match_evidence
from vidrnn.tracker.settings import TrackerSettings

__all__ = ["MatchingRun", "MatchingSearch", "SearchResult"]


@dataclass
class SearchResult:
    """One frame's search: where it looked (``window``), what it found (``evidence [EVIDENCE_DIM]``), the
    matching-only answer in frame pixels (``matching_box``) and whether it is ``held``; ``maps [1,C,H,W]`` is the
    crop's feature map (to update the template from)."""

    window: SearchWindow
    evidence: torch.Tensor
    matching_box: np.ndarray
    held: bool
    frame_shape: tuple[int, ...]
    maps: torch.Tensor | None


class MatchingSearch:
    """The frozen CNN and the template matcher, searching frames the way ``settings`` say."""

    def __init__(self, settings: TrackerSettings, device: str | torch.device = "cpu",
                 backbone: FrozenBackbone | None = None) -> None:
        self.settings = settings
        self.device = torch.device(device)
        if backbone is not None and backbone.spec != settings.backbone:
            raise ValueError(f"the backbone {backbone.spec} is not the one the settings ask for: {settings.backbone}")
        self.backbone = (backbone or build_backbone(settings.backbone)).to(self.device)
        self.matcher = TemplateMatcher(settings.template_cells).to(self.device)

    def _maps(self, crops: np.ndarray) -> torch.Tensor:
        preprocess = self.backbone.preprocess
        if crops.shape[1] != preprocess.resize_size:  # a widened search: the CNN reads the larger crop as it is
            preprocess = replace(preprocess, resize_size=crops.shape[1])
        return self.backbone(preprocess(crops).to(self.device))

    @torch.no_grad()
    def template(self, frame: np.ndarray, box: np.ndarray) -> torch.Tensor:
        """The target's appearance ``[1,C,rows,cols]`` (shaped like its box): the CNN map of its search crop, pooled
        inside its box."""
        window = self.settings.geometry.window(box)
        maps = self._maps(crop_window(frame, window, self.settings.geometry.size)[None])
        crop_box = torch.tensor(window.box_to_crop(box)[None], dtype=maps.dtype, device=self.device)
        return self.matcher.template(maps, crop_box)

    @torch.no_grad()
    def search(self, frames: list[np.ndarray], boxes: list[np.ndarray], templates: torch.Tensor,
               widen: float = 1.0) -> list[SearchResult]:
        """Search each frame around its box with its template (``[N,C,rows,cols]``), in one CNN batch.

        ``widen`` > 1 searches a region that many times wider, cut at as many times the pixels, so the target keeps
        its size on the feature map and the template still fits it (the CNN's cost grows with ``widen`` squared):
        re-detection when the tracker believes it has lost the target."""
        geometry = self.settings.geometry
        size = int(round(geometry.size * widen))
        windows = [geometry.window(box) for box in boxes]
        windows = [SearchWindow(window.cx, window.cy, window.side * widen) for window in windows]
        crops = np.stack([crop_window(frame, window, size) for frame, window in zip(frames, windows)])
        maps = self._maps(crops)
        sizes = torch.tensor(np.array([box[2:] / window.side for box, window in zip(boxes, windows)]),
                             dtype=maps.dtype, device=self.device)
        evidence = match_evidence(self.matcher, maps, templates, sizes)
        centres, factors, held = (value.cpu().numpy() for value in self.settings.rule.answer(Evidence(evidence)))
        results = []
        for index, (frame, window, box) in enumerate(zip(frames, windows, boxes)):
            centre = window.box_from_crop(np.r_[centres[index], 0.0, 0.0])[:2]
            size = np.asarray(box[2:], dtype=np.float64) * float(factors[index])
            results.append(SearchResult(window, evidence[index], np.r_[centre - size / 2, size], bool(held[index]),
                                        frame.shape, maps[index:index + 1]))
        return results

    @torch.no_grad()
    def updated_template(self, template: torch.Tensor, step: SearchResult, box: np.ndarray) -> torch.Tensor:
        """``template`` moved by ``template_rate`` towards the appearance inside ``box`` (frame pixels) in ``step``;
        unchanged while the search is held (what is at the box then is probably not the target)."""
        rate = self.settings.template_rate
        if rate == 0.0 or step.held:
            return template
        crop_box = torch.tensor(step.window.box_to_crop(box)[None], dtype=step.maps.dtype, device=self.device)
        return torch.lerp(template, self.matcher.template(step.maps, crop_box, template.shape[-2:]), rate)

    def start(self, first: np.ndarray, box: np.ndarray) -> MatchingRun:
        """A matching run whose target is at ``box`` in ``first``."""
        return MatchingRun(self, np.asarray(box, dtype=np.float64), self.template(first, box))

    @torch.no_grad()
    def steps(self, first: np.ndarray, box: np.ndarray, frames: Iterable[np.ndarray]) -> Iterator[SearchResult]:
        """The matching tracker's search of each frame after ``first``, one after the other."""
        run = self.start(first, box)
        for frame in frames:
            yield run.step(frame)


@dataclass
class MatchingRun:
    """One matching tracker's state between frames: its box (where the next search goes) and its template."""

    search: MatchingSearch
    box: np.ndarray
    template: torch.Tensor
    #: Consecutive held searches (the target probably hidden or lost) up to now.
    held_streak: int = 0

    @property
    def widen(self) -> float:
        """How much wider than usual the next search is: ``redetect_widen`` once the search has been held for
        ``redetect_after`` frames in a row (re-detection of a target that left the region), else 1."""
        settings = self.search.settings
        lost = settings.redetect_after > 0 and self.held_streak >= settings.redetect_after
        return settings.redetect_widen if lost else 1.0

    def step(self, frame: np.ndarray, widen: float | None = None) -> SearchResult:
        """Search ``frame`` around the box (``widen``: this much wider; default :attr:`widen`) and advance."""
        result = self.search.search([frame], [self.box], self.template, self.widen if widen is None else widen)[0]
        self.advance(result)
        return result

    def advance(self, step: SearchResult) -> None:
        """Move to this frame's answer: the matching box, kept a sensible size for the frame (``step.matching_box``
        is updated to it), and the template updated there."""
        self.box = step.matching_box = clamp_to_frame(step.matching_box, step.frame_shape)
        self.template = self.search.updated_template(self.template, step, self.box)
        self.held_streak = self.held_streak + 1 if step.held else 0

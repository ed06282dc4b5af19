"""One validated record of how a matching tracker searches: the settings that decide its evidence.

The evidence a head is trained on must be the evidence it reads when it tracks, and the box it learns to correct must
be the box the matching tracker computes. Both depend on the same handful of settings — the frozen CNN, the search
region, the template's size, how fast the template and the box's size follow the target, when a weak peak holds the
search. They are checked here, once, and travel as one object: from the config into the data module (which caches
evidence with them), from there into the model (linked by the CLI), into its checkpoint, and back out into the
tracker that ``vidrnn track`` builds. Nothing else declares or validates them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from vidrnn.backbones import BackboneSpec
from vidrnn.checkpoints import differing_settings
from vidrnn.tracker.geometry import SearchGeometry
from vidrnn.tracker.matching import MatchingRule

__all__ = ["TrackerSettings"]


def _map_backbone() -> BackboneSpec:
    return BackboneSpec(name="efficientnet_lite0", pooling="map", layer="blocks.10")


@dataclass(frozen=True)
class TrackerSettings:
    """How the matching tracker searches (see :class:`~vidrnn.tracker.runtime.Tracker` for what each one does).

    Args:
        backbone: the frozen CNN; its ``pooling`` is always ``map`` and its ``input_size`` the crop's side.
        geometry: search-region context, size factor and crop resolution.
        template_cells: the template's side in feature-map cells for a square target (odd: a centred kernel; other
            aspects get about as many cells, shaped like the box).
        template_rate: the template moves this fraction towards the tracked box's appearance each frame, in [0, 1).
        scale_rate: the matching box's size moves this fraction (log) towards the best-matching scale, in [0, 1].
        hold_below: the search stays put while the peak stands less than this many standard deviations above the
            response's mean (0: never).
        redetect_after: once the search has been held this many frames in a row, the next searches cover a region
            ``redetect_widen`` times wider, until the peak is sharp again (0: never) — the target may have moved out
            of the region while it was hidden or while the tracker waited elsewhere.
        redetect_widen: how much wider a re-detection search is (cut at as many times the pixels, so the target keeps
            its size on the feature map; the CNN's cost grows with its square).
    """

    backbone: BackboneSpec = field(default_factory=_map_backbone)
    geometry: SearchGeometry = field(default_factory=SearchGeometry)
    template_cells: int = 7
    template_rate: float = 0.01
    scale_rate: float = 0.3
    hold_below: float = 2.5
    redetect_after: int = 0
    redetect_widen: float = 3.0

    def __post_init__(self) -> None:
        if self.template_cells < 1 or self.template_cells % 2 == 0:
            raise ValueError(f"template_cells must be a positive odd number (a centred kernel), got {self.template_cells}")
        if not 0.0 <= self.template_rate < 1.0:
            raise ValueError(f"template_rate must be in [0, 1), got {self.template_rate}")
        MatchingRule(self.scale_rate, self.hold_below)  # refuses a scale_rate or hold_below out of range
        if self.redetect_after < 0 or self.redetect_widen < 1:
            raise ValueError(f"need redetect_after >= 0 and redetect_widen >= 1, got {self.redetect_after} and "
                             f"{self.redetect_widen}")
        backbone = BackboneSpec(**self.backbone) if isinstance(self.backbone, dict) else self.backbone
        geometry = SearchGeometry(**self.geometry) if isinstance(self.geometry, dict) else self.geometry
        object.__setattr__(self, "geometry", geometry)
        object.__setattr__(self, "backbone", replace(backbone, pooling="map", input_size=geometry.size))

    @property
    def rule(self) -> MatchingRule:
        """The matching-only answer these settings give (what a trained head corrects)."""
        return MatchingRule(self.scale_rate, self.hold_below)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a checkpoint loads with ``weights_only=True``; a config prints them)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrackerSettings:
        return cls(**values)

    def identity(self) -> dict[str, Any]:
        """What evidence computed with these settings depends on (a local weights file by its digest; the
        re-detection region's size only when re-detection is on)."""
        values = {**self.to_dict(), "backbone": self.backbone.identity()}
        if self.redetect_after == 0:
            del values["redetect_after"], values["redetect_widen"]
        return values

    def check_head_reads(self, used: TrackerSettings, remedy: str) -> None:
        """Refuse to let a head trained with these settings track with ``used``: it would read evidence made
        otherwise than the evidence it learnt from, and correct a matching box computed otherwise — without an error
        anywhere. Every setting counts (each one changes the searches a head reads; the re-detection region's size
        too, once re-detection is on); ``remedy`` says what to do instead. How far a head's doubt widens the search
        (``redetect_below``) is the model's own, not a setting here."""
        differing = differing_settings(self.to_dict(), used.to_dict(), "tracker")
        if differing:
            raise ValueError(f"the checkpoint's head was trained with other tracker settings ({'; '.join(differing)}): "
                             f"{remedy}")

"""Choosing which frames of a video become the sequence a model sees.

Sampling is decided from a frame count (and frame rate) alone, before any pixel is decoded, so the decoder can read
sequentially and skip the rest. A :class:`SamplingSpec` is a small, serialisable record: together with the backbone
spec it determines a feature cache, and it travels in checkpoints so inference samples exactly as training did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["SamplingSpec", "Strategy", "cap_evenly", "segment_indices"]

Strategy = Literal["segments", "stride", "fps", "all"]


def segment_indices(num_frames: int, num_segments: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """TSN-style sampling: one frame from each of ``num_segments`` equal segments.

    With ``rng`` one of the segment's own frames is drawn, uniformly (training-time augmentation; never a frame of a
    neighbouring segment, so never one twice); without it the segment's centre is taken (evaluation, reproducible). A
    video shorter than ``num_segments`` yields all its frames once: sequences are variable-length, so frames are
    never invented by repetition.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be positive, got {num_segments}")
    if num_frames <= num_segments:
        return np.arange(num_frames, dtype=np.int64)
    if rng is None:
        edges = np.linspace(0.0, num_frames, num_segments + 1)
        points = (edges[:-1] + edges[1:]) / 2.0
    else:
        # A segment's own frames, from the first whole frame inside it: drawn over the segment's span instead, a
        # segment narrower than two frames would share its neighbour's (33 frames in 32 segments repeated one nearly
        # every draw). Where each segment spans whole frames, these are its edges, and the draws those of the span.
        first = -(-np.arange(num_segments + 1, dtype=np.int64) * num_frames // num_segments)
        points = first[:-1] + rng.random(num_segments) * np.diff(first)
    return np.clip(np.floor(points), 0, num_frames - 1).astype(np.int64)


def cap_evenly(indices: np.ndarray, max_frames: int | None) -> np.ndarray:
    """Keep at most ``max_frames`` of ``indices``, evenly spread, so a capped sequence still spans the whole video."""
    if max_frames is None or len(indices) <= max_frames:
        return indices
    keep = np.floor((np.arange(max_frames) + 0.5) * len(indices) / max_frames).astype(np.int64)
    return indices[keep]


@dataclass(frozen=True)
class SamplingSpec:
    """Which frames to decode and at what size.

    Strategies:
        ``segments``: ``num_segments`` frames, the centre of each of as many equal segments (TSN).
        ``stride``: every ``stride``-th frame.
        ``fps``: frames at ``fps`` per second of source time (the source frame rate is read from the video). It
        steps through frame numbers at the container's average rate, so on a variable-frame-rate video (phones,
        screen recordings) the frames are evenly spaced in frames, not in seconds; ``segments`` has no such
        assumption.
        ``all``: every frame.
    ``max_frames`` caps any strategy, keeping frames evenly spread over the video. ``short_side`` resizes frames at
    decode time (shorter side in pixels, aspect kept; ``None`` keeps the decoded size).
    """

    strategy: Strategy = "segments"
    num_segments: int = 16
    stride: int = 1
    fps: float | None = None
    max_frames: int | None = None
    short_side: int | None = 256

    def __post_init__(self) -> None:
        if self.strategy not in ("segments", "stride", "fps", "all"):
            raise ValueError(f"unknown sampling strategy {self.strategy!r}; use segments, stride, fps or all")
        if self.strategy == "fps" and (self.fps is None or self.fps <= 0):
            raise ValueError("sampling strategy 'fps' needs a positive fps")
        if self.num_segments < 1 or self.stride < 1:
            raise ValueError("num_segments and stride must be at least 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError("max_frames must be at least 1 (or None for no cap)")
        if self.short_side is not None and self.short_side < 1:
            raise ValueError("short_side must be at least 1 (or None to keep the decoded size)")

    def indices(self, num_frames: int, source_fps: float) -> np.ndarray:
        """Frame indices (sorted) to decode from a video of ``num_frames`` frames at ``source_fps``."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        if self.strategy == "segments":
            chosen = segment_indices(num_frames, self.num_segments)
        elif self.strategy == "stride":
            chosen = np.arange(0, num_frames, self.stride, dtype=np.int64)
        elif self.strategy == "fps":
            step = source_fps / self.fps if source_fps > 0 else 1.0
            chosen = np.unique(np.floor(np.arange(0.0, num_frames, max(step, 1.0))).astype(np.int64))
        else:
            chosen = np.arange(num_frames, dtype=np.int64)
        return cap_evenly(chosen, self.max_frames)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SamplingSpec:
        return cls(**values)

"""Where a tracker looks: a square search region around the target, cut from the frame at a fixed resolution.

Why not the whole frame: a frozen CNN sees a 1920x1080 frame squeezed to a few hundred pixels, and a 30-pixel target
becomes a 5-pixel smudge — less than one cell of a stride-16 feature map. Cropping a region whose side is a fixed
multiple of the target's size (SiamFC's rule: context ``p = context * (w + h)`` around the box, side
``search_factor * sqrt((w + p)(h + p))``) and resizing it to ``size`` pixels makes the target appear at about the
same size in every crop, whatever the resolution of the video — ``size / (2 * search_factor)`` pixels for a square
target with the defaults. The CNN's cost per frame is fixed as well, so a 4K video costs what a 320x240 one does.

Why 448 pixels: on a stride-16 feature map a square target then covers ``448 / 4 / 16 = 7`` cells, the side of the
template (``template_cells``), so the template holds the target and little background. Smaller crops leave the
target a few cells wide — 4 at 256 px, the first setting — and larger ones cost CNN time with the square of the
side. Chosen on the generated training and validation sequences, matching-only success AUC (crop px / template cells,
training/validation): 256/5 0.784/0.785, 320/5 0.832/0.837, 384/7 0.835/0.851, 448/7 0.867/0.857, 448/9
-/0.832, 512/9 0.857/0.873; 448/7 and 512/9 are level, and 448 costs 0.77 of 512's pixels.

Coordinates: boxes are 0-based pixel ``x, y, w, h`` with pixel ``i`` covering ``[i, i + 1)``. A
:class:`SearchWindow` is the region's centre and side in frame pixels; inside a crop, positions are normalised to
``[0, 1]`` of the crop's side, so models never see pixel sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collections.abc import Iterable

import cv2
import numpy as np

__all__ = [
    "BoxOutsideFrame", "SearchGeometry", "SearchWindow", "UntrackableBox", "boxes_from_crops", "clamp_to_frame", "crop_window",
    "validate_box",
]


class UntrackableBox(ValueError):
    """A first box no tracker can start from: an evaluation names the sequence and scores the others, where any other
    ``ValueError`` is a fault of the code."""


class BoxOutsideFrame(UntrackableBox):
    """A first box wholly outside the frame: where it was read from a file, the file's layout or resolution is likely
    wrong, which a message about it can say."""


def validate_box(box: Iterable[float], frame_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The initial box as float64 ``x, y, w, h``, refused early with a reason (:class:`UntrackableBox`) if it cannot
    be tracked."""
    box = np.asarray(list(box), dtype=np.float64)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise UntrackableBox(f"the first box must be 4 finite numbers x, y, w, h; got {box.tolist()}")
    if box[2] < 2 or box[3] < 2:
        raise UntrackableBox(f"the first box must be at least 2x2 pixels; got w={box[2]}, h={box[3]}")
    if frame_shape is not None:
        height, width = frame_shape[:2]
        if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
            raise BoxOutsideFrame(f"the first box {box.tolist()} lies outside the {width}x{height} frame")
    return box


def clamp_to_frame(boxes: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """Boxes ``[..., 4]`` clamped to mean something in the frame: sizes between 2 pixels and the frame's, centres
    inside it.

    A box larger than the frame means nothing, and a box wholly outside it shows no target: the next search around it
    would see mostly the fill colour, and the tracker would never come back. With its centre kept inside, a box always
    overlaps the frame (by a quarter of its area at least), while a target leaving across an edge can still be
    followed half out. A box whose centre is inside keeps its position.
    """
    height, width = frame_shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64)
    size = np.concatenate([np.clip(boxes[..., 2:3], 2.0, width), np.clip(boxes[..., 3:4], 2.0, height)], axis=-1)
    centre = np.clip(boxes[..., :2] + size / 2, 0.0, [width, height])
    return np.concatenate([centre - size / 2, size], axis=-1)


def boxes_from_crops(boxes: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Crop-normalised ``x, y, w, h`` ``[..., 4]`` → frame pixels, each in its window ``[..., 3]`` (centre x, y and
    side, as :class:`SearchWindow` holds them)."""
    boxes, windows = np.asarray(boxes, dtype=np.float64), np.asarray(windows, dtype=np.float64)
    side = windows[..., 2:3]
    corner = windows[..., :2] - side / 2
    return np.concatenate([boxes[..., :2] * side + corner, boxes[..., 2:] * side], axis=-1)


@dataclass(frozen=True)
class SearchWindow:
    """A square region of a frame: centre ``(cx, cy)`` and ``side``, in frame pixels."""

    cx: float
    cy: float
    side: float

    @property
    def left(self) -> float:
        return self.cx - self.side / 2

    @property
    def top(self) -> float:
        return self.cy - self.side / 2

    def box_to_crop(self, box: np.ndarray) -> np.ndarray:
        """Frame ``x, y, w, h`` → crop-normalised ``x, y, w, h`` (works on ``[..., 4]``)."""
        box = np.asarray(box, dtype=np.float64)
        offset = np.array([self.left, self.top, 0.0, 0.0])
        return (box - offset) / self.side

    def box_from_crop(self, box: np.ndarray) -> np.ndarray:
        """Crop-normalised ``x, y, w, h`` → frame ``x, y, w, h`` (works on ``[..., 4]``)."""
        return boxes_from_crops(box, np.array([self.cx, self.cy, self.side]))


@dataclass(frozen=True)
class SearchGeometry:
    """How large a region to search around a box, and at what resolution the CNN sees it."""

    #: Context added around the box, as a fraction of ``w + h`` (SiamFC: 0.5).
    context: float = 0.5
    #: Side of the search region over the side of the context box: room for the target to move between frames.
    search_factor: float = 2.0
    #: Pixels of the square crop fed to the CNN.
    size: int = 448

    def __post_init__(self) -> None:
        if self.context < 0 or self.search_factor < 1 or self.size < 32:
            raise ValueError(
                f"need context >= 0, search_factor >= 1 and size >= 32, got {self.context}, {self.search_factor}, "
                f"{self.size}"
            )

    def window(self, box: np.ndarray) -> SearchWindow:
        """The search region for a target whose last known box is ``box`` (``x, y, w, h``)."""
        x, y, w, h = (float(value) for value in box)
        w, h = max(w, 1.0), max(h, 1.0)
        pad = self.context * (w + h)
        side = self.search_factor * math.sqrt((w + pad) * (h + pad))
        return SearchWindow(x + w / 2, y + h / 2, side)


def crop_window(frame: np.ndarray, window: SearchWindow, size: int, fill: np.ndarray | None = None) -> np.ndarray:
    """Cut ``window`` out of an RGB ``frame`` and resize it to ``size`` x ``size`` in one bilinear warp.

    Parts of the window outside the frame are filled with ``fill`` (default: the frame's mean colour, SiamFC's
    choice: a neutral value the CNN does not read as an edge or an object).
    """
    scale = size / window.side
    # Pixel centres: destination pixel j (centre j + 0.5) samples frame position left + (j + 0.5) / scale.
    matrix = np.array(
        [
            [scale, 0.0, scale * (0.5 - window.left) - 0.5],
            [0.0, scale, scale * (0.5 - window.top) - 0.5],
        ]
    )
    if fill is None:
        fill = frame.reshape(-1, frame.shape[-1]).mean(axis=0)
    return cv2.warpAffine(
        frame,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=tuple(float(value) for value in fill),
    )

"""Drawing for the generated demo videos: textures, sprites, cluttered settings, paths that bounce off the walls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "PATTERNS",
    "Look",
    "Size",
    "Sprite",
    "bouncing_path",
    "cluttered_background",
    "colour",
    "paint_sprite",
    "pattern",
    "sample_sprite",
    "smooth_noise",
    "stream_rng",
    "to_uint8",
]

#: ``(height, width)`` in pixels, as everywhere in vidrnn.
Size = tuple[int, int]

PATTERNS = ("stripes", "checker", "rings")


def stream_rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """An independent random stream: one seed, but generators that never share numbers (``stream``) and a stream per
    item (``keys``), so generating fewer items leaves the others unchanged."""
    return np.random.default_rng([seed, stream, *keys])


# Images are float32 RGB in [0, 1] while being drawn and become uint8 only when finished.


def colour(
    rng: np.random.Generator,
    hue: tuple[float, float] = (0.0, 360.0),
    saturation: tuple[float, float] = (0.3, 1.0),
    value: tuple[float, float] = (0.3, 1.0),
) -> np.ndarray:
    """A random RGB colour, drawn in HSV because "some red" or "a dark colour" is a range there."""
    hsv = np.array([[[rng.uniform(*hue) % 360.0, rng.uniform(*saturation), rng.uniform(*value)]]], np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]


def smooth_noise(rng: np.random.Generator, size: Size, feature: float) -> np.ndarray:
    """Zero-mean noise ``[H, W, 3]`` with blobs about ``feature`` pixels across: a coarse random grid, upsampled."""
    height, width = size
    grid_shape = (max(2, round(height / feature)), max(2, round(width / feature)), 3)
    grid = rng.normal(size=grid_shape).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def pattern(kind: str, u: np.ndarray, v: np.ndarray, frequency: float, phase: float) -> np.ndarray:
    """A soft two-tone texture in [0, 1] over an object's own coordinates, so it turns and scales with the object."""
    if kind == "stripes":
        wave = np.sin(np.pi * frequency * u + phase)
    elif kind == "checker":
        wave = np.sin(np.pi * frequency * u + phase) * np.sin(np.pi * frequency * v + phase)
    else:
        wave = np.sin(np.pi * frequency * np.hypot(u, v) + phase)
    return 0.5 + 0.5 * np.tanh(3.0 * wave)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image drawn in floats in [0, 1] as the 8-bit pixels a video stores, rounded to the nearest level."""
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Sprite:
    """The fixed appearance of an object: outline, orientation and texture."""

    #: Order p of the L^p "circle" that outlines it: 1 a diamond, 2 a disk, ``inf`` a square.
    outline: float
    angle: float
    pattern: str
    #: Pattern cycles across the object's radius.
    frequency: float
    phase: float


@dataclass(frozen=True, eq=False)
class Look:
    """The part of an object's appearance that a class may change over time."""

    radius: float
    #: 0 is invisible, 1 opaque.
    opacity: float
    #: RGB; the texture's dark tone is a shade of it.
    colour: np.ndarray

    def towards(self, other: Look, progress: float) -> Look:
        """The look a fraction ``progress`` of the way to ``other``.

        The radius changes geometrically, by the same factor every frame, as an object approaching at steady speed
        would; opacity and colour change linearly.
        """
        return Look(
            radius=self.radius * (other.radius / self.radius) ** progress,
            opacity=self.opacity + progress * (other.opacity - self.opacity),
            colour=self.colour + progress * (other.colour - self.colour),
        )


def sample_sprite(rng: np.random.Generator) -> Sprite:
    """A random appearance for one object, drawn from ``rng`` alone, so a seed gives the same demo everywhere."""
    return Sprite(
        outline=float(rng.choice([1.0, 2.0, np.inf])),
        angle=rng.uniform(0.0, np.pi),
        pattern=str(rng.choice(PATTERNS)),
        frequency=rng.uniform(1.5, 4.0),
        phase=rng.uniform(0.0, 2.0 * np.pi),
    )


def paint_sprite(canvas: np.ndarray, sprite: Sprite, centre: Sequence[float], look: Look) -> None:
    """Blend a sprite onto a float RGB canvas in place, computing only the pixels it can cover.

    The rim gets one pixel of anti-aliasing, so a slowly growing object grows smoothly instead of in pixel steps.
    """
    height, width = canvas.shape[:2]
    centre_x, centre_y = centre
    reach = look.radius * np.sqrt(2.0) + 1.0  # a square's corner lies sqrt(2) radii from its centre
    left, right = max(0, int(centre_x - reach)), min(width, int(centre_x + reach) + 1)
    top, bottom = max(0, int(centre_y - reach)), min(height, int(centre_y + reach) + 1)
    if left >= right or top >= bottom:
        return
    ys, xs = np.mgrid[top:bottom, left:right].astype(np.float32)
    cos, sin = np.cos(sprite.angle), np.sin(sprite.angle)
    u = cos * (xs - centre_x) + sin * (ys - centre_y)
    v = cos * (ys - centre_y) - sin * (xs - centre_x)
    distance = np.linalg.norm(np.stack([u, v]), ord=sprite.outline, axis=0)
    coverage = np.clip(look.radius - distance + 0.5, 0.0, 1.0) * look.opacity
    tone = pattern(sprite.pattern, u / look.radius, v / look.radius, sprite.frequency, sprite.phase)
    colour = look.colour * (0.45 + 0.55 * tone)[..., None]
    region = canvas[top:bottom, left:right]
    region += coverage[..., None] * (colour - region)


def cluttered_background(rng: np.random.Generator, size: Size) -> np.ndarray:
    """A place to film in: a colour gradient, soft blotches, fine grain and a few static shapes.

    Real backgrounds are not flat; with clutter, finding the subject takes more than spotting the only structure.
    """
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) / max(size)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp = np.cos(angle) * xs + np.sin(angle) * ys
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, end = colour(rng, value=(0.25, 0.85)), colour(rng, value=(0.25, 0.85))
    canvas = start + ramp[..., None] * (end - start)
    canvas += 0.12 * smooth_noise(rng, size, feature=min(size) / 3) + 0.04 * smooth_noise(rng, size, feature=2.0)
    for _ in range(rng.integers(3, 7)):
        centre = (rng.uniform(0, width), rng.uniform(0, height))
        look = Look(radius=rng.uniform(0.06, 0.2) * min(size), opacity=rng.uniform(0.3, 0.8), colour=colour(rng))
        paint_sprite(canvas, sample_sprite(rng), centre, look)
    return np.clip(canvas, 0.0, 1.0)


def bouncing_path(
    rng: np.random.Generator, num_frames: int, low: np.ndarray, high: np.ndarray, speed: tuple[float, float]
) -> np.ndarray:
    """Centres ``[T, 2]`` (x, y) of straight motion at constant speed that bounces off the walls of a box.

    The start is uniform in the box and the direction uniform, so the path played backwards is just another such
    path: this motion carries no arrow of time.
    """
    direction = rng.uniform(0.0, 2.0 * np.pi)
    velocity = rng.uniform(*speed) * np.array([np.cos(direction), np.sin(direction)])
    unfolded = rng.uniform(low, high) - low + np.arange(num_frames)[:, None] * velocity
    extent = high - low
    folded = np.mod(unfolded, 2.0 * extent)
    return low + np.where(folded <= extent, folded, 2.0 * extent - folded)



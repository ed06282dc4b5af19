"""Synthetic videos for demos and tests: action clips that need temporal order, and tracking sequences.

Both generators write the formats of real datasets, so the loaders that read UCF101 and OTB read the demo data too,
and both are deterministic: the same seed gives the same pixels.

Classification: order pairs
---------------------------
A model that averages frame features over time sees a clip as a bag of frames. To show what a recurrent model adds,
the classes come in *order pairs*: the second class of a pair is the first one played backwards. ``Shrink`` is
``Grow`` reversed, ``FadeOut`` is ``FadeIn`` reversed, ``BlueToRed`` is ``RedToBlue`` reversed. Both classes of a pair
are drawn from the same random distribution and hold exactly the same set of frames, so any order-blind model (mean
pooling, a bag of frames) is at chance within a pair, while a model that reads frames in order can separate them.

The backbone's per-frame feature is globally average pooled, so it records *what* is in a frame far better than
*where*. Each pair therefore changes the frame's global appearance, not just an object's position:

* ``Grow`` / ``Shrink``: a textured object swells from a small speck to one filling much of the frame (area x10 and
  more) / shrinks from large to small.
* ``FadeIn`` / ``FadeOut``: the lights come up on the scene from near darkness / go down to near darkness. A
  whole-scene fade, not an object's: an object fading in would start, like ``Grow``, with no object to see, and the
  two pairs would look alike at their ends.
* ``RedToBlue`` / ``BlueToRed``: a textured object's colour turns from red through purple to blue / from blue to red.

Everything else in a clip is nuisance, as in real video: each recording *group* (UCF101's ``_gGG_``) has its own
setting (colour gradient, blotches, grain, static clutter), each clip sees it from a slightly shifted camera under
different light, the object's outline, texture, colour, size and position vary per clip and it drifts slowly, and a
few small distractor shapes bounce around in front of it. Every motion is a straight line at constant speed with
bounces off the walls; played backwards that is another path of the same kind, so no motion gives away the direction
of time -- only the class's change does.

Tracking
--------
OTB-style sequences cut from real photographs (the ones scikit-image ships in its wheel, so nothing is downloaded):
the camera pans slowly across one photo, the target is a rounded patch of another photo (a face, a cat, a mug, a
rocket) or a textured card that wanders with random accelerations, bounces off the frame edges, grows and shrinks (or
keeps its size), changes its aspect and slowly turns towards another view of itself, the light drifts, look-alike patches cut from near the target's source wander behind it, and once a bar cut
from a third photo sweeps across in front of it and hides it for a few frames. Real image statistics matter here:
a tracker built on ImageNet features and trained on flat synthetic cards learns cues that real video lacks. The
ground truth is the box the target was drawn in, clipped to the frame, and stays its true box while hidden (the OTB
convention).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vidrnn.data.ucf101 import SPLITS_FOLDER, VIDEOS_FOLDER

__all__ = [
    "CLASSES",
    "DEMO_MARKER",
    "ORDER_PAIRS",
    "Clip",
    "Distractor",
    "Look",
    "PatchTrack",
    "Sprite",
    "TrackingScene",
    "TRACKING_DEMO_SPLITS",
    "ensure_demo_data",
    "ensure_tracking_demo",
    "make_classification_dataset",
    "make_tracking_sequences",
    "render_clip",
    "render_tracking_frame",
    "sample_clip",
    "sample_tracking_scene",
]

#: ``(height, width)`` in pixels, as everywhere in vidrnn.
Size = tuple[int, int]

#: Each pair's second class shows the first one's clips played backwards.
ORDER_PAIRS: tuple[tuple[str, str], ...] = (("Grow", "Shrink"), ("FadeIn", "FadeOut"), ("RedToBlue", "BlueToRed"))
CLASSES: tuple[str, ...] = tuple(name for pair in ORDER_PAIRS for name in pair)
_FORWARD_CLASS = {name: pair[0] for pair in ORDER_PAIRS for name in pair}

#: Written last by :func:`ensure_demo_data`: its presence means the demo dataset beside it is complete.
DEMO_MARKER = "vidrnn-demo.json"

_JPEG_QUALITY = 90
_PATTERNS = ("stripes", "checker", "rings")
# Independent random streams: one seed, but the backgrounds, the clips and the tracking scenes never share numbers,
# and each clip has its own stream, so generating fewer classes or groups leaves the other clips unchanged.
_SETTING_STREAM, _CLIP_STREAM, _TRACKING_STREAM = 0, 1, 2
# Fastest target motion, as a fraction of the frame width per frame.
_TARGET_MAX_SPEED = 0.03


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


# --- drawing primitives ----------------------------------------------------------------------------------------------
# Images are float32 RGB in [0, 1] while being drawn and become uint8 only when finished.


def _colour(
    rng: np.random.Generator,
    hue: tuple[float, float] = (0.0, 360.0),
    saturation: tuple[float, float] = (0.3, 1.0),
    value: tuple[float, float] = (0.3, 1.0),
) -> np.ndarray:
    """A random RGB colour, drawn in HSV because "some red" or "a dark colour" is a range there."""
    hsv = np.array([[[rng.uniform(*hue) % 360.0, rng.uniform(*saturation), rng.uniform(*value)]]], np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]


def _smooth_noise(rng: np.random.Generator, size: Size, feature: float) -> np.ndarray:
    """Zero-mean noise ``[H, W, 3]`` with blobs about ``feature`` pixels across: a coarse random grid, upsampled."""
    height, width = size
    grid_shape = (max(2, round(height / feature)), max(2, round(width / feature)), 3)
    grid = rng.normal(size=grid_shape).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, frequency: float, phase: float) -> np.ndarray:
    """A soft two-tone texture in [0, 1] over an object's own coordinates, so it turns and scales with the object."""
    if kind == "stripes":
        wave = np.sin(np.pi * frequency * u + phase)
    elif kind == "checker":
        wave = np.sin(np.pi * frequency * u + phase) * np.sin(np.pi * frequency * v + phase)
    else:
        wave = np.sin(np.pi * frequency * np.hypot(u, v) + phase)
    return 0.5 + 0.5 * np.tanh(3.0 * wave)


def _to_uint8(image: np.ndarray) -> np.ndarray:
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


def _sample_sprite(rng: np.random.Generator) -> Sprite:
    return Sprite(
        outline=float(rng.choice([1.0, 2.0, np.inf])),
        angle=rng.uniform(0.0, np.pi),
        pattern=str(rng.choice(_PATTERNS)),
        frequency=rng.uniform(1.5, 4.0),
        phase=rng.uniform(0.0, 2.0 * np.pi),
    )


def _paint_sprite(canvas: np.ndarray, sprite: Sprite, centre: Sequence[float], look: Look) -> None:
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
    tone = _pattern(sprite.pattern, u / look.radius, v / look.radius, sprite.frequency, sprite.phase)
    colour = look.colour * (0.45 + 0.55 * tone)[..., None]
    region = canvas[top:bottom, left:right]
    region += coverage[..., None] * (colour - region)


def _cluttered_background(rng: np.random.Generator, size: Size) -> np.ndarray:
    """A place to film in: a colour gradient, soft blotches, fine grain and a few static shapes.

    Real backgrounds are not flat; with clutter, finding the subject takes more than spotting the only structure.
    """
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) / max(size)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ramp = np.cos(angle) * xs + np.sin(angle) * ys
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, end = _colour(rng, value=(0.25, 0.85)), _colour(rng, value=(0.25, 0.85))
    canvas = start + ramp[..., None] * (end - start)
    canvas += 0.12 * _smooth_noise(rng, size, feature=min(size) / 3) + 0.04 * _smooth_noise(rng, size, feature=2.0)
    for _ in range(rng.integers(3, 7)):
        centre = (rng.uniform(0, width), rng.uniform(0, height))
        look = Look(radius=rng.uniform(0.06, 0.2) * min(size), opacity=rng.uniform(0.3, 0.8), colour=_colour(rng))
        _paint_sprite(canvas, _sample_sprite(rng), centre, look)
    return np.clip(canvas, 0.0, 1.0)


def _bouncing_path(
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


# --- classification clips --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Distractor:
    """A small shape that moves through a clip without any relation to its class."""

    sprite: Sprite
    look: Look
    path: np.ndarray


@dataclass(frozen=True, eq=False)
class Clip:
    """Everything needed to film one clip; :func:`render_clip` turns it into frames."""

    #: This clip's view of its group's setting, float RGB ``[H, W, 3]``.
    background: np.ndarray
    subject: Sprite
    #: The subject's look in the first and last frame of the forward film.
    start: Look
    end: Look
    subject_path: np.ndarray
    distractors: tuple[Distractor, ...]
    #: True for the second class of an order pair: the forward film is played in reverse.
    backwards: bool
    #: Brightness of the whole scene in the first and last frame of the forward film.
    light: tuple[float, float] = (1.0, 1.0)

    @property
    def num_frames(self) -> int:
        return len(self.subject_path)


def _grow(rng: np.random.Generator, look: Look, side: float) -> tuple[Look, Look]:
    """From a speck to an object that fills much of the frame: the pooled feature moves from background to object."""
    return replace(look, radius=side * rng.uniform(0.06, 0.1)), replace(look, radius=side * rng.uniform(0.36, 0.44))


def _fade_in(rng: np.random.Generator, look: Look, side: float) -> tuple[Look, Look]:
    """The subject does not change: the scene's light does (see :func:`_lighting`)."""
    return look, look


def _red_to_blue(rng: np.random.Generator, look: Look, side: float) -> tuple[Look, Look]:
    """From a red to a blue: colour survives global average pooling intact.

    The object is drawn large, so its colour dominates the frame rather than competing with a colourful background.
    """
    red = _colour(rng, hue=(-12.0, 12.0), saturation=(0.7, 1.0), value=(0.7, 1.0))
    blue = _colour(rng, hue=(220.0, 245.0), saturation=(0.7, 1.0), value=(0.7, 1.0))
    large = replace(look, radius=side * rng.uniform(0.34, 0.42))
    return replace(large, colour=red), replace(large, colour=blue)


#: For the first class of each order pair: how the subject's first and last look are drawn.
_TRANSITIONS: dict[str, Callable[[np.random.Generator, Look, float], tuple[Look, Look]]] = {
    "Grow": _grow,
    "FadeIn": _fade_in,
    "RedToBlue": _red_to_blue,
}


def _lighting(rng: np.random.Generator, forward_class: str) -> tuple[float, float]:
    """Scene brightness in the first and last frame of the forward film: lights coming up for ``FadeIn``."""
    if forward_class == "FadeIn":
        return rng.uniform(0.04, 0.12), rng.uniform(0.95, 1.0)
    return 1.0, 1.0


def _camera_view(rng: np.random.Generator, setting: np.ndarray, size: Size) -> np.ndarray:
    """A clip's view of its group's setting: the camera moved a little since the last clip and the light changed."""
    height, width = size
    top = rng.integers(0, setting.shape[0] - height + 1)
    left = rng.integers(0, setting.shape[1] - width + 1)
    gain = rng.uniform(0.85, 1.15)
    return np.clip(setting[top : top + height, left : left + width] * gain, 0.0, 1.0)


def _setting_size(size: Size) -> Size:
    """Group settings are a quarter larger than the frame, leaving room for each clip's camera shift."""
    height, width = size
    return height + height // 4, width + width // 4


def sample_clip(rng: np.random.Generator, class_name: str, setting: np.ndarray, size: Size, num_frames: int) -> Clip:
    """Draw one clip of ``class_name`` filmed in ``setting``, its group's background.

    Both classes of an order pair draw the same numbers in the same order: for one generator state, ``"Shrink"``
    gets exactly the clip that ``"Grow"`` gets, marked to be played backwards.
    """
    if class_name not in _FORWARD_CLASS:
        raise ValueError(f"unknown class {class_name!r}; the synthetic classes are {', '.join(CLASSES)}")
    forward = _FORWARD_CLASS[class_name]
    height, width = size
    side = float(min(size))
    frame_box = np.array([width, height], dtype=np.float64)
    background = _camera_view(rng, setting, size)
    subject = _sample_sprite(rng)
    look = Look(radius=side * rng.uniform(0.2, 0.28), opacity=1.0, colour=_colour(rng, value=(0.5, 1.0)))
    start, end = _TRANSITIONS[forward](rng, look, side)
    light = _lighting(rng, forward)
    subject_path = _bouncing_path(rng, num_frames, 0.3 * frame_box, 0.7 * frame_box, speed=(0.0, 0.01 * side))
    distractors = tuple(
        Distractor(
            sprite=_sample_sprite(rng),
            look=Look(radius=side * rng.uniform(0.04, 0.08), opacity=1.0, colour=_colour(rng)),
            path=_bouncing_path(rng, num_frames, np.zeros(2), frame_box, speed=(0.01 * side, 0.04 * side)),
        )
        for _ in range(rng.integers(2, 5))
    )
    return Clip(background, subject, start, end, subject_path, distractors, backwards=class_name != forward,
                light=light)


def _render_forward_frame(clip: Clip, index: int) -> np.ndarray:
    canvas = clip.background.copy()
    progress = index / (clip.num_frames - 1)
    _paint_sprite(canvas, clip.subject, clip.subject_path[index], clip.start.towards(clip.end, progress))
    for distractor in clip.distractors:
        _paint_sprite(canvas, distractor.sprite, distractor.path[index], distractor.look)
    first, last = clip.light
    return _to_uint8(canvas * (first + progress * (last - first)))


def render_clip(clip: Clip) -> np.ndarray:
    """The clip's frames as RGB uint8 ``[T, H, W, 3]``.

    A backwards clip is the forward film in reverse, frame for frame: the two classes of a pair differ in nothing but
    order.
    """
    frames = np.stack([_render_forward_frame(clip, index) for index in range(clip.num_frames)])
    return frames[::-1].copy() if clip.backwards else frames


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write MJPG in AVI with OpenCV's own encoder: present in every OpenCV build, intra-frame only, deterministic."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an MJPG video here")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, _JPEG_QUALITY)
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _video_name(class_name: str, group: int, clip: int) -> str:
    return f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def _test_groups(groups: int, fold: int) -> set[int]:
    """The groups fold ``fold`` (1-3) tests on: like UCF101, each fold holds out a different third of the groups."""
    return {int(group) for group in np.array_split(np.arange(1, groups + 1), 3)[fold - 1]}


def _write_crlf(path: Path, lines: Sequence[str]) -> None:
    """Write lines ending in CRLF, as the official UCF101 lists do, byte for byte on any platform."""
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode("ascii"))


def _write_split_lists(list_dir: Path, classes: Sequence[str], groups: int, clips_per_group: int) -> None:
    list_dir.mkdir(parents=True, exist_ok=True)
    _write_crlf(list_dir / "classInd.txt", [f"{class_id} {name}" for class_id, name in enumerate(classes, 1)])
    for fold in (1, 2, 3):
        test_groups = _test_groups(groups, fold)
        train, test = [], []
        for class_id, name in enumerate(classes, 1):
            for group in range(1, groups + 1):
                for clip in range(1, clips_per_group + 1):
                    listed = f"{name}/{_video_name(name, group, clip)}"
                    if group in test_groups:
                        test.append(listed)
                    else:
                        train.append(f"{listed} {class_id}")
        _write_crlf(list_dir / f"trainlist{fold:02d}.txt", train)
        _write_crlf(list_dir / f"testlist{fold:02d}.txt", test)


def _chosen_classes(classes: Sequence[str] | None) -> list[str]:
    """The requested classes in the canonical order of :data:`CLASSES`, which fixes their ids in classInd.txt."""
    if classes is None:
        return list(CLASSES)
    unknown = sorted(set(classes) - set(CLASSES))
    if unknown:
        raise ValueError(f"unknown classes {unknown}; the synthetic classes are {', '.join(CLASSES)}")
    if not classes:
        raise ValueError("classes must name at least one class (or be None for all)")
    return [name for name in CLASSES if name in classes]


def make_classification_dataset(
    out_dir: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    groups: int = 6,
    clips_per_group: int = 8,
    num_frames: int = 16,
    size: Size = (96, 128),
    fps: float = 25.0,
    seed: int = 0,
) -> Path:
    """Write a UCF101-shaped dataset of order-pair clips and return ``out_dir``.

    Layout, as the official download: ``out_dir/UCF-101/<Class>/v_<Class>_gGG_cCC.avi`` (MJPG AVI) and
    ``out_dir/ucfTrainTestlist/`` with ``classInd.txt``, ``trainlist0{1,2,3}.txt``, ``testlist0{1,2,3}.txt`` (CRLF).
    Clips of a group share a setting, so the three folds split by group (each fold tests a different third of the
    groups; ``groups`` must be at least 3). ``classes`` (default: all of :data:`CLASSES`) may pick a subset; each
    clip is drawn from its own random stream, so a clip is the same whichever other classes are generated.
    ``size`` is ``(height, width)``. The defaults (6 classes x 6 groups x 8 clips of 16 frames, 288 clips) take seconds.
    """
    names = _chosen_classes(classes)
    if groups < 3:
        raise ValueError(f"groups must be at least 3, one test third per fold; got {groups}")
    if clips_per_group < 1 or num_frames < 2:
        raise ValueError(f"need clips_per_group >= 1 and num_frames >= 2, got {clips_per_group} and {num_frames}")
    out_dir = Path(out_dir)
    videos = out_dir / VIDEOS_FOLDER
    for name in names:
        (videos / name).mkdir(parents=True, exist_ok=True)
    for group in range(1, groups + 1):
        setting = _cluttered_background(_rng(seed, _SETTING_STREAM, group), _setting_size(size))
        for name in names:
            for clip_number in range(1, clips_per_group + 1):
                rng = _rng(seed, _CLIP_STREAM, CLASSES.index(name), group, clip_number)
                frames = render_clip(sample_clip(rng, name, setting, size, num_frames))
                _write_video(videos / name / _video_name(name, group, clip_number), frames, fps)
    _write_split_lists(out_dir / SPLITS_FOLDER, names, groups, clips_per_group)
    return out_dir


# --- the demo dataset, generated once ---------------------------------------------------------------------------------


def _marker_text(generator: str, seed: int) -> str:
    return json.dumps({"generator": generator, "seed": seed})


def _is_complete(root: Path, marker: str) -> bool:
    path = root / DEMO_MARKER
    return path.is_file() and path.read_text(encoding="utf-8") == marker


def _check_replaceable(root: Path, ours: set[str]) -> None:
    """Refuse to delete a directory that holds anything a demo generation would not have written."""
    foreign = sorted(entry.name for entry in root.iterdir() if entry.name not in ours | {DEMO_MARKER})
    if foreign:
        raise FileExistsError(f"{root} holds {foreign}, which is not demo data; refusing to replace it")


def _ensure_generated(out_dir: Path, marker: str, ours: set[str], generate: Callable[[Path], object]) -> Path:
    """``out_dir`` as ``generate`` writes it, generated only if a complete one is not already there.

    Generation goes into a hidden sibling directory, the marker file is written last, and only then is the directory
    renamed into place: ``out_dir`` is either absent or complete, and an interrupted generation (killed, disk full) is
    simply redone by the next call. A directory without the right marker (partial, or made with another seed) is
    replaced, but only if it holds nothing besides demo data.
    """
    if _is_complete(out_dir, marker):
        return out_dir
    if out_dir.exists():
        _check_replaceable(out_dir, ours)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        generate(staging)
        (staging / DEMO_MARKER).write_text(marker, encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def ensure_demo_data(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """The default classification demo dataset at ``out_dir``, generated once (see :func:`_ensure_generated`)."""
    marker = _marker_text("vidrnn.data.synthetic.make_classification_dataset", seed)
    return _ensure_generated(
        Path(out_dir), marker, {VIDEOS_FOLDER, SPLITS_FOLDER},
        lambda staging: make_classification_dataset(staging, seed=seed),
    )


# --- tracking sequences ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PatchTrack:
    """A textured patch and its box in every frame.

    Boxes are integer ``(x, y, w, h)`` rows ``[T, 4]``, 0-based, and may reach past the frame edge; the texture is
    stretched to each box, so a growing box shows the same texture larger. A fourth channel is the patch's shape
    (alpha: a rounded object leaves the box's corners to the background). ``later`` is the look it turns towards,
    ``turn[t]`` how far it has turned at frame ``t`` (0: ``texture`` itself).
    """

    texture: np.ndarray
    boxes: np.ndarray
    later: np.ndarray | None = None
    turn: np.ndarray | None = None

    def texture_at(self, index: int) -> np.ndarray:
        if self.later is None or self.turn is None:
            return self.texture
        return self.texture + self.turn[index] * (self.later - self.texture)


@dataclass(frozen=True, eq=False)
class TrackingScene:
    """Everything needed to film one tracking sequence; :func:`render_tracking_frame` draws its frames."""

    #: A photo larger than the frame; frame ``t`` shows it from ``camera[t]`` (``x, y`` of the view's corner).
    background: np.ndarray
    camera: np.ndarray
    #: Brightness of the whole frame over time (the light drifts).
    gain: np.ndarray
    frame_size: Size
    #: Drawn first, behind the target.
    distractors: tuple[PatchTrack, ...]
    target: PatchTrack
    #: Drawn last: it passes in front of the target once.
    occluder: PatchTrack

    @property
    def num_frames(self) -> int:
        return len(self.target.boxes)

    def ground_truth(self) -> np.ndarray:
        """The target's 0-based ``(x, y, w, h)`` per frame, clipped to the frame: exactly the pixels it was drawn on.

        While the occluder hides the target this stays the target's true box, as in OTB.
        """
        return np.array([_clip_box(box, self.frame_size) for box in self.target.boxes])


def _clip_box(box: np.ndarray, size: Size) -> tuple[int, int, int, int]:
    """The part of an ``(x, y, w, h)`` box inside a frame of ``size``, as ``(x, y, w, h)`` (empty: zero w or h)."""
    height, width = size
    x, y, w, h = (int(value) for value in box)
    left, top = min(max(x, 0), width), min(max(y, 0), height)
    right, bottom = max(min(x + w, width), left), max(min(y + h, height), top)
    return left, top, right - left, bottom - top


def _paste(canvas: np.ndarray, texture: np.ndarray, box: np.ndarray) -> None:
    """Stretch ``texture`` (RGB, or RGBA with its shape as alpha) to ``box`` and draw the part inside the canvas."""
    x, y, w, h = (int(value) for value in box)
    left, top, visible_w, visible_h = _clip_box(box, canvas.shape[:2])
    if visible_w == 0 or visible_h == 0:
        return
    stretched = cv2.resize(texture, (w, h), interpolation=cv2.INTER_LINEAR)
    stretched = stretched[top - y : top - y + visible_h, left - x : left - x + visible_w]
    region = canvas[top : top + visible_h, left : left + visible_w]
    if stretched.shape[2] == 4:
        alpha = stretched[..., 3:]
        region[...] = region * (1 - alpha) + stretched[..., :3] * alpha
    else:
        region[...] = stretched


def _rounded(texture: np.ndarray, exponent: float) -> np.ndarray:
    """``texture`` with a superellipse ``|u|^p + |v|^p <= 1`` as its alpha: an ellipse at ``p = 2``, nearly the
    whole rectangle at large ``p`` (real objects seldom fill their box; the corners show what is behind them)."""
    height, width = texture.shape[:2]
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (u + 0.5) / width * 2 - 1, (v + 0.5) / height * 2 - 1
    alpha = (np.abs(u) ** exponent + np.abs(v) ** exponent <= 1).astype(np.float32)
    return np.concatenate([texture, alpha[..., None]], axis=2)


def _textured_patch(rng: np.random.Generator, size: Size) -> np.ndarray:
    """A two-colour pattern with grain: detail a tracker can lock on to, where a flat colour would offer none."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = (xs + 0.5) / width * 2.0 - 1.0, (ys + 0.5) / height * 2.0 - 1.0
    angle = rng.uniform(0.0, np.pi)
    u, v = np.cos(angle) * u + np.sin(angle) * v, np.cos(angle) * v - np.sin(angle) * u
    tone = _pattern(str(rng.choice(_PATTERNS)), u, v, rng.uniform(1.5, 4.0), rng.uniform(0.0, 2.0 * np.pi))
    first, second = _colour(rng), _colour(rng)
    patch = first + tone[..., None] * (second - first) + 0.06 * _smooth_noise(rng, size, feature=2.0)
    return np.clip(patch, 0.0, 1.0)


#: scikit-image's bundled photographs (they ship inside its wheel: no download at run time).
_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
    "camera", "coins", "moon", "grass", "gravel", "brick", "text", "page",
)


@functools.cache
def _photo(name: str) -> np.ndarray:
    """A bundled photograph as float32 RGB in ``[0, 1]`` (grey ones repeated over three channels)."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3].astype(np.float32) / 255.0


def _photo_region(rng: np.random.Generator, photo: np.ndarray, aspect: float, fraction: tuple[float, float]) -> tuple[int, int, int, int]:
    """A random ``(x, y, w, h)`` region of ``photo`` with the given aspect (w / h), spanning ``fraction`` of its side."""
    height, width = photo.shape[:2]
    side = rng.uniform(*fraction) * min(height, width)
    w = int(min(width, max(8, side * np.sqrt(aspect))))
    h = int(min(height, max(8, side / np.sqrt(aspect))))
    return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h


def _photo_patch(rng: np.random.Generator, size: Size, photo: np.ndarray | None = None) -> np.ndarray:
    """A patch of a real photograph resized to ``size``: natural texture, edges and colour for a target to have."""
    photo = _photo(str(rng.choice(_PHOTOS))) if photo is None else photo
    height, width = size
    x, y, w, h = _photo_region(rng, photo, width / height, (0.15, 0.45))
    return cv2.resize(photo[y : y + h, x : x + w], (width, height), interpolation=cv2.INTER_AREA)


def _wander(
    rng: np.random.Generator, num_frames: int, low: np.ndarray, high: np.ndarray, max_speed: float
) -> np.ndarray:
    """Centres ``[T, 2]`` of smooth, lively motion inside a box.

    Small random accelerations bend the path, speed is capped at ``max_speed`` pixels per frame, and a wall reflects
    the position and reverses the velocity, like a bounce.
    """
    position = rng.uniform(low, high)
    direction = rng.uniform(0.0, 2.0 * np.pi)
    velocity = rng.uniform(0.3, 1.0) * max_speed * np.array([np.cos(direction), np.sin(direction)])
    centres = np.empty((num_frames, 2))
    for index in range(num_frames):
        centres[index] = position
        velocity = velocity + rng.normal(0.0, 0.15 * max_speed, size=2)
        velocity *= min(1.0, max_speed / max(float(np.hypot(*velocity)), 1e-9))
        position = position + velocity
        below, above = position < low, position > high
        position = np.where(below, 2 * low - position, np.where(above, 2 * high - position, position))
        velocity = np.where(below | above, -velocity, velocity)
    return centres


def _boxes(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Integer ``(x, y, w, h)`` boxes ``[T, 4]`` centred on ``centres`` with ``(w, h)`` from ``sizes``."""
    wh = np.maximum(np.rint(sizes), 1)
    corners = np.rint(centres - wh / 2)
    return np.concatenate([corners, wh], axis=1).astype(np.int64)


def _sample_target(
    rng: np.random.Generator, num_frames: int, size: Size, texture: np.ndarray, later: np.ndarray | None = None
) -> PatchTrack:
    """A patch that wanders, bounces off the frame edges, swells and shrinks (or hardly does), changes its aspect a
    little and, given a ``later`` look, slowly turns towards it and back (the appearance a template must follow)."""
    height, width = size
    # Real targets come in every shape: people are two to three times taller than wide, cars and bags wider than tall.
    area = rng.uniform(0.1, 0.2) ** 2 * width * height
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(3.0)))  # height / width
    base_w = np.sqrt(area / aspect)
    base_h = min(base_w * aspect, 0.45 * height)
    # Log-scale amplitude: over a whole period the box spans a factor of 1 to 2.2. Many real targets keep their size
    # for a whole clip; a head trained only on targets that always grow or shrink learns to expect it.
    swing = rng.uniform(0.0, 0.4)
    # Sizes change at the pace real ones do: someone walking towards a camera 5 m away at 1.5 m/s grows by 1 % a frame
    # at 30 frames/s. A period of 150-400 frames keeps the change under 1.7 % a frame (about 0.5 % on average).
    period = rng.uniform(150.0, 400.0)
    phase = 2 * np.pi * np.arange(num_frames) / period + rng.uniform(0.0, 2 * np.pi)
    scale = np.exp(swing * np.sin(phase))
    squash = np.exp(rng.uniform(0.0, 0.15) * np.sin(phase * rng.uniform(0.5, 1.5) + rng.uniform(0, 2 * np.pi)))
    sizes = np.stack([base_w * scale * squash, base_h * scale / squash], axis=1)
    reach = sizes.max(axis=0) / 4  # the centre keeps this far inside: three quarters of the card stay in view
    frame_box = np.array([width, height], dtype=np.float64)
    speed = rng.uniform(0.3, 1.0) * _TARGET_MAX_SPEED * width
    centres = _wander(rng, num_frames, reach, frame_box - reach, speed)
    shape = (round(base_w), round(base_h))
    if later is None:
        return PatchTrack(cv2.resize(texture, shape), _boxes(centres, sizes))
    turn = rng.uniform(0.0, 0.6) * (1 - np.cos(2 * np.pi * np.arange(num_frames) / rng.uniform(150.0, 400.0))) / 2
    return PatchTrack(cv2.resize(texture, shape), _boxes(centres, sizes), cv2.resize(later, shape), turn)


def _sample_distractor(rng: np.random.Generator, num_frames: int, size: Size, texture: np.ndarray) -> PatchTrack:
    """A patch like the target, of fixed size, wandering anywhere: something a careless tracker can jump to."""
    height, width = size
    card = np.array([rng.uniform(0.08, 0.18) * width, rng.uniform(0.08, 0.25) * height])
    centres = _wander(rng, num_frames, np.zeros(2), np.array([width, height], float), _TARGET_MAX_SPEED * width)
    return PatchTrack(texture, _boxes(centres, np.broadcast_to(card, (num_frames, 2))))


def _sample_occluder(rng: np.random.Generator, target: PatchTrack, size: Size) -> PatchTrack:
    """A tall bar that moves at constant speed and passes over the target in the middle third of the clip.

    Relative to the target's motion at the crossing, the bar takes 3 to 18 frames to pass from one side of the target
    to the other: anything from a passer-by hurrying past to someone walking behind a bus. Real occlusions last that
    long (OTB's and VOT's run for tens of frames), and only an occlusion that lasts can teach a recurrent head what a
    single frame cannot show — where the hidden target went.
    """
    height, width = size
    num_frames = len(target.boxes)
    crossing = rng.integers(max(num_frames // 3, min(1, num_frames - 1)), 2 * num_frames // 3 + 1)
    x, y, w, h = target.boxes[crossing]
    bar = np.array([rng.uniform(0.8, 1.3) * target.boxes[:, 2].mean(), rng.uniform(0.6, 0.9) * height])
    centres_x = target.boxes[:, 0] + target.boxes[:, 2] / 2
    target_speed = centres_x[min(crossing + 1, num_frames - 1)] - centres_x[max(crossing - 1, 0)]
    target_speed /= max(1, min(crossing + 1, num_frames - 1) - max(crossing - 1, 0))
    side, duration = rng.choice([-1.0, 1.0]), rng.uniform(3.0, 18.0)
    while True:  # hurried along until the first frame, where the template is taken, is clear of the bar
        centre_x = x + w / 2 + (target_speed + side * (bar[0] + w) / duration) * (np.arange(num_frames) - crossing)
        if crossing == 0 or abs(centre_x[0] - centres_x[0]) >= (bar[0] + target.boxes[0, 2]) / 2 + 1:
            break  # (a one-frame scene has no other frame to cross in)
        duration *= 0.8
    centres = np.stack([centre_x, np.full(num_frames, y + h / 2)], axis=1)
    texture = _photo_patch(rng, (round(bar[1]), max(1, round(bar[0]))))
    return PatchTrack(texture, _boxes(centres, np.broadcast_to(bar, (num_frames, 2))))


def _panning_background(rng: np.random.Generator, num_frames: int, size: Size) -> tuple[np.ndarray, np.ndarray]:
    """A photo 1.3-1.6 times the frame and the camera's slow, smooth path across it (``[T, 2]`` view corners)."""
    height, width = size
    photo = _photo(str(rng.choice(_PHOTOS)))
    zoom = rng.uniform(1.3, 1.6) * max(height / photo.shape[0], width / photo.shape[1])
    setting = cv2.resize(photo, (round(photo.shape[1] * zoom) + 1, round(photo.shape[0] * zoom) + 1))
    room = np.array([setting.shape[1] - width, setting.shape[0] - height], dtype=np.float64)
    start, end = rng.uniform(0, room), rng.uniform(0, room)
    progress = np.linspace(0.0, 1.0, num_frames)[:, None]
    camera = np.rint(start + (end - start) * (3 * progress**2 - 2 * progress**3)).astype(np.int64)
    return setting, camera


def sample_tracking_scene(rng: np.random.Generator, num_frames: int, size: Size) -> TrackingScene:
    """Draw one tracking scene: a panning photo, a target cut from another photo, look-alikes and an occluder."""
    background, camera = _panning_background(rng, num_frames, size)
    source = _photo(str(rng.choice(_PHOTOS)))
    textured = rng.uniform() < 0.25  # some targets keep the synthetic card: high-contrast patterns occur too
    height, width = size
    target_size = (max(8, round(0.3 * height)), max(8, round(0.3 * width)))
    if textured:
        target = _sample_target(rng, num_frames, size, _textured_patch(rng, target_size))
    else:  # a rounded patch of a photo that turns towards another view of the same thing
        exponent = rng.uniform(2.0, 6.0)
        looks = [_rounded(_photo_patch(rng, target_size, source), exponent) for _ in range(2)]
        target = _sample_target(rng, num_frames, size, *looks)
    distractors = tuple(
        _sample_distractor(rng, num_frames, size, _photo_patch(rng, target_size, source))
        for _ in range(rng.integers(1, 4))
    )
    occluder = _sample_occluder(rng, target, size)
    gain = np.exp(rng.uniform(0.05, 0.3) * np.sin(np.linspace(0, rng.uniform(1, 3) * np.pi, num_frames)
                                                   + rng.uniform(0, 2 * np.pi)))
    return TrackingScene(background, camera, gain, size, distractors, target, occluder)


def render_tracking_frame(scene: TrackingScene, index: int, *, with_target: bool = True) -> np.ndarray:
    """Frame ``index`` as RGB uint8 ``[H, W, 3]``; ``with_target=False`` shows what the target covers."""
    height, width = scene.frame_size
    x, y = scene.camera[index]
    canvas = scene.background[y : y + height, x : x + width].copy()
    for distractor in scene.distractors:
        _paste(canvas, distractor.texture, distractor.boxes[index])
    if with_target:
        _paste(canvas, scene.target.texture_at(index), scene.target.boxes[index])
    _paste(canvas, scene.occluder.texture, scene.occluder.boxes[index])
    return _to_uint8(canvas * scene.gain[index])


def _write_jpeg(path: Path, frame: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the frame as JPEG")
    encoded.tofile(path)  # tofile, like the reader's fromfile, copes with any file name encoding


def _write_ground_truth(path: Path, boxes: np.ndarray) -> None:
    """OTB's ``groundtruth_rect.txt``: one ``x,y,w,h`` line per frame in 1-based pixel coordinates."""
    lines = [f"{x + 1},{y + 1},{w},{h}\n" for x, y, w, h in boxes]
    path.write_bytes("".join(lines).encode("ascii"))


def make_tracking_sequences(
    out_dir: str | os.PathLike,
    *,
    num_sequences: int = 3,
    num_frames: int = 60,
    size: Size = (240, 320),
    seed: int = 0,
) -> list[Path]:
    """Write OTB-format sequences ``out_dir/SynthNN/img/0001.jpg...`` + ``groundtruth_rect.txt``; return the folders.

    ``size`` is ``(height, width)``. Each sequence has its own random stream, so sequence 1 is the same whatever
    ``num_sequences`` is.
    """
    if num_sequences < 1 or num_frames < 3:
        raise ValueError(f"need num_sequences >= 1 and num_frames >= 3, got {num_sequences} and {num_frames}")
    folders = []
    for number in range(1, num_sequences + 1):
        scene = sample_tracking_scene(_rng(seed, _TRACKING_STREAM, number), num_frames, size)
        folder = Path(out_dir) / f"Synth{number:02d}"
        images = folder / "img"
        images.mkdir(parents=True, exist_ok=True)
        for index in range(num_frames):
            _write_jpeg(images / f"{index + 1:04d}.jpg", render_tracking_frame(scene, index))
        _write_ground_truth(folder / "groundtruth_rect.txt", scene.ground_truth())
        folders.append(folder)
    return folders


#: Sequences and frames of the tracking demo: ``train`` for fitting, ``val`` for choosing, ``test`` for reporting.
TRACKING_DEMO_SPLITS = {"train": (96, 48), "val": (8, 60), "test": (8, 90)}
#: Bump when the tracking scenes change, so a demo generated by older code is replaced rather than reused.
TRACKING_DEMO_VERSION = 5


def ensure_tracking_demo(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """The tracking demo at ``out_dir``: ``train/``, ``val/`` and ``test/`` folders of OTB-format sequences.

    Generated once, atomically, like :func:`ensure_demo_data`. Each split draws from its own seed, so no scene is in
    two splits.
    """
    def generate(staging: Path) -> None:
        for offset, (split, (sequences, frames)) in enumerate(TRACKING_DEMO_SPLITS.items()):
            make_tracking_sequences(staging / split, num_sequences=sequences, num_frames=frames,
                                    seed=seed * 1000 + offset)

    marker = _marker_text(f"vidrnn.data.synthetic.ensure_tracking_demo v{TRACKING_DEMO_VERSION} {TRACKING_DEMO_SPLITS}",
                          seed)
    return _ensure_generated(Path(out_dir), marker, set(TRACKING_DEMO_SPLITS), generate)

"""Generated tracking sequences for the demo and tests, in the OTB layout.

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
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidrnn.data.demo_staging import ensure_generated, is_generated, marker_text
from vidrnn.data.drawing import PATTERNS, Size, colour, pattern, smooth_noise, stream_rng, to_uint8

__all__ = [
    "TRACKING_DEMO_SPLITS",
    "PatchTrack",
    "TrackingScene",
    "ensure_tracking_demo",
    "ensure_tracking_sequences",
    "make_tracking_sequences",
    "render_tracking_frame",
    "sample_tracking_scene",
    "tracking_demo_generated",
]

# The tracking demo's random stream (:func:`~vidrnn.data.drawing.stream_rng`; the classification demo uses 0 and 1).
_TRACKING_STREAM = 2
# Fastest target motion, as a fraction of the frame width per frame.
_TARGET_MAX_SPEED = 0.03



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
    tone = pattern(str(rng.choice(PATTERNS)), u, v, rng.uniform(1.5, 4.0), rng.uniform(0.0, 2.0 * np.pi))
    first, second = colour(rng), colour(rng)
    patch = first + tone[..., None] * (second - first) + 0.06 * smooth_noise(rng, size, feature=2.0)
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


def render_tracking_frame(scene: TrackingScene, index: int) -> np.ndarray:
    """Frame ``index`` as RGB uint8 ``[H, W, 3]``."""
    height, width = scene.frame_size
    x, y = scene.camera[index]
    canvas = scene.background[y : y + height, x : x + width].copy()
    for distractor in scene.distractors:
        _paste(canvas, distractor.texture, distractor.boxes[index])
    _paste(canvas, scene.target.texture_at(index), scene.target.boxes[index])
    _paste(canvas, scene.occluder.texture, scene.occluder.boxes[index])
    return to_uint8(canvas * scene.gain[index])


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
        scene = sample_tracking_scene(stream_rng(seed, _TRACKING_STREAM, number), num_frames, size)
        folder = Path(out_dir) / f"Synth{number:02d}"
        images = folder / "img"
        images.mkdir(parents=True, exist_ok=True)
        for index in range(num_frames):
            _write_jpeg(images / f"{index + 1:04d}.jpg", render_tracking_frame(scene, index))
        _write_ground_truth(folder / "groundtruth_rect.txt", scene.ground_truth())
        folders.append(folder)
    return folders


def ensure_tracking_sequences(out_dir: str | os.PathLike, *, seed: int = 0, num_sequences: int = 3,
                              num_frames: int = 60) -> Path:
    """:func:`make_tracking_sequences` at ``out_dir``, generated once and atomically, its marker naming the seed and
    settings (see :func:`~vidrnn.data.demo_staging.ensure_generated`): a folder holding anything else, the same
    generator's sequences of another seed or other settings among it, is refused, not written into or replaced."""
    marker = marker_text("vidrnn.data.synthetic_tracking.make_tracking_sequences", seed,
                         num_sequences=num_sequences, num_frames=num_frames)
    return ensure_generated(Path(out_dir), marker, lambda staging: make_tracking_sequences(
        staging, num_sequences=num_sequences, num_frames=num_frames, seed=seed))


#: Sequences and frames of the tracking demo: ``train`` for fitting, ``val`` for choosing, ``test`` for reporting.
TRACKING_DEMO_SPLITS = {"train": (96, 48), "val": (8, 60), "test": (8, 90)}
#: Bump when the tracking scenes change, so a demo generated by older code is refused rather than reused.
TRACKING_DEMO_VERSION = 5


def _tracking_marker(seed: int) -> str:
    return marker_text(f"vidrnn.data.synthetic.ensure_tracking_demo v{TRACKING_DEMO_VERSION} {TRACKING_DEMO_SPLITS}",
                       seed)


def tracking_demo_generated(out_dir: str | os.PathLike, seed: int = 0, setting: str = "folder") -> bool:
    """Whether the tracking demo generated with ``seed`` is at ``out_dir`` (nothing is written); refused where it
    holds another seed's, as :func:`~vidrnn.data.synthetic.demo_generated` refuses it."""
    return is_generated(Path(out_dir), _tracking_marker(seed), setting)


def ensure_tracking_demo(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """The tracking demo at ``out_dir``: ``train/``, ``val/`` and ``test/`` folders of OTB-format sequences.

    Generated once, atomically, like :func:`ensure_demo_data`. Each split draws from its own seed, so no scene is in
    two splits.
    """
    def generate(staging: Path) -> None:
        for offset, (split, (sequences, frames)) in enumerate(TRACKING_DEMO_SPLITS.items()):
            make_tracking_sequences(staging / split, num_sequences=sequences, num_frames=frames,
                                    seed=seed * 1000 + offset)

    return ensure_generated(Path(out_dir), _tracking_marker(seed), generate)

"""Synthetic classification videos for demos and tests: action clips that only temporal order tells apart.

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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vidrnn.data.demo_staging import DEMO_MARKER, ensure_generated, is_generated, marker_text
from vidrnn.data.drawing import (
    Look,
    Size,
    Sprite,
    bouncing_path,
    cluttered_background,
    colour,
    paint_sprite,
    sample_sprite,
    stream_rng,
    to_uint8,
)
from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.data.ucf101 import SPLITS_FOLDER, VIDEOS_FOLDER, check_fold, official_split_rule

__all__ = [
    "CLASSES",
    "DEMO_MARKER",
    "ORDER_PAIRS",
    "Clip",
    "Distractor",
    "demo_generated",
    "demo_index",
    "ensure_classification_dataset",
    "ensure_demo_data",
    "make_classification_dataset",
    "render_clip",
    "sample_clip",
]

#: Each pair's second class shows the first one's clips played backwards.
ORDER_PAIRS: tuple[tuple[str, str], ...] = (("Grow", "Shrink"), ("FadeIn", "FadeOut"), ("RedToBlue", "BlueToRed"))
CLASSES: tuple[str, ...] = tuple(name for pair in ORDER_PAIRS for name in pair)
_FORWARD_CLASS = {name: pair[0] for pair in ORDER_PAIRS for name in pair}

_JPEG_QUALITY = 90
# Independent random streams (:func:`~vidrnn.data.drawing.stream_rng`): the settings and the clips never share numbers
# (the tracking demo has its own stream, 2).
_SETTING_STREAM, _CLIP_STREAM = 0, 1



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
    red = colour(rng, hue=(-12.0, 12.0), saturation=(0.7, 1.0), value=(0.7, 1.0))
    blue = colour(rng, hue=(220.0, 245.0), saturation=(0.7, 1.0), value=(0.7, 1.0))
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
    subject = sample_sprite(rng)
    look = Look(radius=side * rng.uniform(0.2, 0.28), opacity=1.0, colour=colour(rng, value=(0.5, 1.0)))
    start, end = _TRANSITIONS[forward](rng, look, side)
    light = _lighting(rng, forward)
    subject_path = bouncing_path(rng, num_frames, 0.3 * frame_box, 0.7 * frame_box, speed=(0.0, 0.01 * side))
    distractors = tuple(
        Distractor(
            sprite=sample_sprite(rng),
            look=Look(radius=side * rng.uniform(0.04, 0.08), opacity=1.0, colour=colour(rng)),
            path=bouncing_path(rng, num_frames, np.zeros(2), frame_box, speed=(0.01 * side, 0.04 * side)),
        )
        for _ in range(rng.integers(2, 5))
    )
    return Clip(background, subject, start, end, subject_path, distractors, backwards=class_name != forward,
                light=light)


def _render_forward_frame(clip: Clip, index: int) -> np.ndarray:
    canvas = clip.background.copy()
    progress = index / (clip.num_frames - 1)
    paint_sprite(canvas, clip.subject, clip.subject_path[index], clip.start.towards(clip.end, progress))
    for distractor in clip.distractors:
        paint_sprite(canvas, distractor.sprite, distractor.path[index], distractor.look)
    first, last = clip.light
    return to_uint8(canvas * (first + progress * (last - first)))


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


def _listed(classes: Sequence[str], groups: int, clips_per_group: int, fold: int) -> dict[str, list[tuple[str, int]]]:
    """Fold ``fold``'s ``train`` and ``test`` lists: each clip as ``Class/video`` and its group, in list order."""
    test_groups = _test_groups(groups, fold)
    lists: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for name in classes:
        for group in range(1, groups + 1):
            for clip in range(1, clips_per_group + 1):
                split = "test" if group in test_groups else "train"
                lists[split].append((f"{name}/{_video_name(name, group, clip)}", group))
    return lists


def _write_split_lists(list_dir: Path, classes: Sequence[str], groups: int, clips_per_group: int) -> None:
    list_dir.mkdir(parents=True, exist_ok=True)
    _write_crlf(list_dir / "classInd.txt", [f"{class_id} {name}" for class_id, name in enumerate(classes, 1)])
    class_ids = {name: class_id for class_id, name in enumerate(classes, 1)}
    for fold in (1, 2, 3):
        lists = _listed(classes, groups, clips_per_group, fold)
        _write_crlf(list_dir / f"trainlist{fold:02d}.txt",
                    [f"{listed} {class_ids[listed.split('/')[0]]}" for listed, _ in lists["train"]])
        _write_crlf(list_dir / f"testlist{fold:02d}.txt", [listed for listed, _ in lists["test"]])


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
        setting = cluttered_background(stream_rng(seed, _SETTING_STREAM, group), _setting_size(size))
        for name in names:
            for clip_number in range(1, clips_per_group + 1):
                rng = stream_rng(seed, _CLIP_STREAM, CLASSES.index(name), group, clip_number)
                frames = render_clip(sample_clip(rng, name, setting, size, num_frames))
                _write_video(videos / name / _video_name(name, group, clip_number), frames, fps)
    _write_split_lists(out_dir / SPLITS_FOLDER, names, groups, clips_per_group)
    return out_dir


#: What the markers of the classification data name as its generator (:func:`ensure_classification_dataset`).
_GENERATOR = "vidrnn.data.synthetic.make_classification_dataset"
#: The default demo's settings, :func:`make_classification_dataset`'s defaults (:func:`ensure_demo_data` generates
#: them, :func:`demo_index` lists them).
_DEMO_SETTINGS = {"groups": 6, "clips_per_group": 8, "num_frames": 16}


def _marker(seed: int, settings: dict[str, int]) -> str:
    """The marker of data generated with ``seed`` and ``settings``: these name their settings, the demo's do not, so
    a demo generated before settings were recorded is recognised as it was."""
    return marker_text(_GENERATOR, seed, **({} if settings == _DEMO_SETTINGS else settings))


def ensure_classification_dataset(out_dir: str | os.PathLike, *, seed: int = 0, groups: int = 6,
                                  clips_per_group: int = 8, num_frames: int = 16) -> Path:
    """:func:`make_classification_dataset` at ``out_dir``, generated once and atomically, its marker naming the seed
    and settings (see :func:`~vidrnn.data.demo_staging.ensure_generated`): a folder holding anything else, the same
    generator's data of another seed or other settings among it, is refused, not written into or replaced. With the
    default settings it is the demo :func:`ensure_demo_data` generates."""
    settings = {"groups": groups, "clips_per_group": clips_per_group, "num_frames": num_frames}
    return ensure_generated(Path(out_dir), _marker(seed, settings),
                            lambda staging: make_classification_dataset(staging, seed=seed, **settings))


def demo_generated(out_dir: str | os.PathLike, seed: int = 0, setting: str = "folder") -> bool:
    """Whether the default demo dataset generated with ``seed`` is at ``out_dir`` (nothing is written).

    Refuses (``ValueError``) a folder holding the demo generated with another seed or other settings, which
    generating would replace under the same names (:func:`~vidrnn.data.demo_staging.is_generated`; ``setting`` names
    what chooses the folder), and (``FileExistsError``) one holding anything else.
    """
    return is_generated(Path(out_dir), _marker(seed, _DEMO_SETTINGS), setting)


def ensure_demo_data(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """The default classification demo dataset at ``out_dir``, generated once (see :func:`ensure_generated`)."""
    return ensure_classification_dataset(out_dir, seed=seed, **_DEMO_SETTINGS)


def demo_index(out_dir: str | os.PathLike, fold: int = 1) -> DatasetIndex:
    """The index :func:`~vidrnn.data.ucf101.ucf101_index` reads from the default demo at ``out_dir`` once it is
    generated, made without it: what the checks of a command read before anything is generated, so that a command
    they refuse generates nothing (the seed changes the pixels, not the names)."""
    check_fold(fold)
    videos = Path(out_dir).expanduser() / VIDEOS_FOLDER
    lists = _listed(CLASSES, _DEMO_SETTINGS["groups"], _DEMO_SETTINGS["clips_per_group"], fold)
    records = [VideoRecord(videos / listed, listed.split("/")[0], f"g{group:02d}", split)
               for split in ("train", "test") for listed, group in lists[split]]
    return DatasetIndex(root=videos, classes=list(CLASSES), records=records,
                        split_rule=official_split_rule(fold, len(CLASSES), len(CLASSES)))

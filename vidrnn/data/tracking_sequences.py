"""Single-object tracking sequences: frames plus one ground-truth box per frame, from OTB, VOT and TLD folders.

Three benchmark families store the same thing in three ways, and this module turns each into one record,
:class:`TrackingSequence`, whose boxes are always **0-based pixel** ``x, y, w, h`` (float64, ``[N, 4]``):

* **OTB**: ``img/*.jpg`` + ``groundtruth_rect.txt`` with ``x,y,w,h`` per line, 1-based: becomes ``x-1, y-1, w, h``.
  Following OTB's own conventions, a folder with one file per target (``groundtruth_rect.1.txt``, ``.2.txt``: Jogging,
  Skating2, ...) holds one sequence per target (``Jogging-1``, ``Jogging-2``), and David's annotation starts at its
  300th image (:attr:`TrackingSequence.first_frame`); sequences whose image folder starts later (BlurCar1 at 0247.jpg)
  need nothing, their first image is their first annotated frame.
* **VOT**: ``color/*.jpg`` (or images directly in the folder) + ``groundtruth.txt`` with a rotated box as the polygon
  ``x1,y1,...,x4,y4`` or an upright ``x,y,w,h`` per line, 0-based: a polygon becomes its axis-aligned bounding box.
* **TLD**: one video file (or images) + ``gt.txt`` with corners ``x1,y1,x2,y2``, 1-based and inclusive: becomes
  ``x1-1, y1-1, x2-x1+1, y2-y1+1``.

Values may be separated by commas, tabs or spaces (OTB mixes them, even within one file). The TLD convention is the
one OTB itself confirms: OTB's ``Jumping`` is TLD's ``02_jumping``, and its first box ``147,110,34,33`` is TLD's
``147,110,180,142`` read as 1-based inclusive corners.

**Absent targets.** A line holding ``NaN`` (any case; TLD writes it when the target leaves the view or is fully
occluded), or a box without area (width or height 0 or less: ``0,0,0,0`` is how LaSOT- and GOT-10k-style files mark
an absent target), makes that frame's whole box NaN; :attr:`TrackingSequence.visible` is false there. Evaluation
must skip such frames rather than score them, and training must not aim at them (a box without area has no centre
to search around and no size to take the logarithm of).

**Frames and boxes that disagree in number.** A sequence is the frames that have a box: its length is
``min(frames, boxes)``, counted from the first frame. Trailing frames without a box are dropped (OTB's Football1 has
81 images and 74 boxes, which cover the first 74) and counted in ``unannotated_frames``; trailing boxes without a
frame are dropped too and counted in ``unmatched_boxes``. Either way a warning is logged. Surplus boxes are not an
error because a video file holds as many frames as the decoder delivers, and decoders can disagree by a frame at the
end of a stream: refusing the whole sequence on one machine for that would cost more than it protects. The price is
that a frame missing from the *middle* of a sequence cannot be detected here; the warning is the cue to look. Frames
are always counted by decoding (:func:`vidrnn.video.probe` with ``count=True``), never taken from the container's
header, which can be wrong (TLD's ``david.mpg`` declares 760 frames and holds 761).

Malformed ground truth (a wrong number of values, text that is not a number) raises :class:`ValueError` naming
``file:line``, so a broken download is found at load time and not as a mysterious tracking score.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vidrnn.video import VIDEO_EXTENSIONS, FrameSize, is_hidden, iter_frames, probe, read_frames, walk_visible

__all__ = [
    "GROUND_TRUTH_FILES", "SequenceEntry", "TrackingSequence", "find_sequences", "load_entries", "load_sequence",
    "load_sequences", "sequence_entries", "sequence_folders",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TrackingSequence:
    """One annotated clip: where its frames are and the target's box in each of them.

    ``boxes`` row ``i`` belongs to frame ``i`` of ``frames`` (a video file or a folder of images, both readable
    with :mod:`vidrnn.video`); it is read-only so that a sequence shared between a dataset and an evaluation cannot
    be changed by either. ``frames`` may hold more frames than the sequence (see the module notes): read them through
    :meth:`read` or :meth:`iter_frames`, which stop at :attr:`num_frames`.
    """

    name: str
    frames: Path
    boxes: np.ndarray
    format: str
    #: Frames at the end of ``frames`` that had no box and are not part of the sequence.
    unannotated_frames: int = 0
    #: Boxes at the end of the ground-truth file that had no frame and were dropped.
    unmatched_boxes: int = 0
    #: Index in ``frames`` of the sequence's first frame (OTB's David is annotated from its 300th image on).
    first_frame: int = 0

    def __post_init__(self) -> None:
        boxes = np.array(self.boxes, dtype=np.float64)  # a copy, so freezing it leaves the caller's array writable
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
            raise ValueError(f"{self.name}: boxes must be a non-empty [N, 4] array, got shape {boxes.shape}")
        boxes.flags.writeable = False
        object.__setattr__(self, "boxes", boxes)

    @property
    def num_frames(self) -> int:
        """Frames in the sequence, which can be fewer than ``frames`` holds on disk."""
        return len(self.boxes)

    @property
    def visible(self) -> np.ndarray:
        """Boolean ``[N]``: frames where the target is annotated as present."""
        return ~np.isnan(self.boxes).any(axis=1)

    def read(self, *, size: FrameSize = None) -> np.ndarray:
        """All frames of the sequence as RGB uint8 ``[N, H, W, 3]``; for long clips prefer :meth:`iter_frames`. Frames of
        another size than the first are refused (:func:`~vidrnn.video.iter_frames`' ``one_size``): the boxes are in each
        frame's own pixels."""
        return read_frames(self.frames, self._indices, size=size, one_size=True)

    def iter_frames(self, *, size: FrameSize = None, chunk_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(frame_indices, frames)`` chunks (indices into ``frames``), so memory holds one chunk whatever the
        sequence's length."""
        return iter_frames(self.frames, self._indices, size=size, chunk_size=chunk_size, one_size=True)

    @property
    def _indices(self) -> range:
        return range(self.first_frame, self.first_frame + self.num_frames)


@dataclass(frozen=True)
class _Format:
    """What tells one benchmark format from another, and how to turn its lines into ``x, y, w, h``."""

    name: str
    ground_truth: str
    values_per_line: tuple[int, ...]
    line_meaning: str
    to_xywh: Callable[[np.ndarray], np.ndarray]
    find_frames: Callable[[Path], Path]


def _otb_box(values: np.ndarray) -> np.ndarray:
    x, y, width, height = values
    return np.array([x - 1, y - 1, width, height])


def _vot_box(values: np.ndarray) -> np.ndarray:
    if len(values) == 4:
        return values
    xs, ys = values[0::2], values[1::2]
    return np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()])


def _tld_box(values: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = values
    return np.array([x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1])


def _otb_frames(folder: Path) -> Path:
    images = folder / "img"
    if not images.is_dir():
        raise ValueError(f"{folder}: OTB sequence without an img/ folder of frames")
    return images


def _vot_frames(folder: Path) -> Path:
    images = folder / "color"
    return images if images.is_dir() else folder


def _tld_frames(folder: Path) -> Path:
    videos = sorted(p for p in folder.iterdir()
                    if p.suffix.lower() in VIDEO_EXTENSIONS and not is_hidden(p.name) and p.is_file())
    if len(videos) > 1:
        names = ", ".join(p.name for p in videos)
        raise ValueError(f"{folder}: TLD sequence with several video files ({names}); expected one")
    return videos[0] if videos else folder


#: Checked in this order; the first whose ground-truth file a folder holds decides its format.
_FORMATS = (
    _Format("otb", "groundtruth_rect.txt", (4,), "x,y,w,h", _otb_box, _otb_frames),
    _Format("vot", "groundtruth.txt", (8, 4), "x1,y1,...,x4,y4 or x,y,w,h", _vot_box, _vot_frames),
    _Format("tld", "gt.txt", (4,), "x1,y1,x2,y2", _tld_box, _tld_frames),
)

#: The ground-truth file names that mark a folder as a tracking sequence.
GROUND_TRUTH_FILES = tuple(spec.ground_truth for spec in _FORMATS)
#: OTB's files for sequences with several targets, one file each (Jogging, Skating2, Human4, ...).
_OTB_TARGET_FILE = re.compile(r"groundtruth_rect\.(\d+)\.txt")
#: OTB sequences whose images start before their annotation (OTB's own sequence configuration): the number of the
#: first annotated image. Applied only when the folder still holds the images before it.
_OTB_FIRST_ANNOTATED = {"David": 300}

_SEPARATOR = re.compile(r"[,\s]+")


def _parse_value(token: str, where: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{where}: {token!r} is not a number") from None
    if math.isinf(value):
        raise ValueError(f"{where}: {token!r} is not a finite number")
    return value


def _parse_line(line: str, where: str, spec: _Format) -> np.ndarray:
    """One line as an ``x, y, w, h`` box; any NaN, or no area, blanks the whole box: a partly known box is no box,
    and one without area marks an absent target."""
    text = line.strip()
    tokens = _SEPARATOR.split(text) if text else []
    if len(tokens) not in spec.values_per_line:
        counts = " or ".join(str(n) for n in spec.values_per_line)
        raise ValueError(f"{where}: expected {counts} values ({spec.line_meaning}), found {len(tokens)}: {line!r}")
    values = np.array([_parse_value(token, where) for token in tokens])
    box = spec.to_xywh(values)
    return box if box[2] > 0 and box[3] > 0 and not np.isnan(box).any() else np.full(4, np.nan)


def _read_boxes(path: Path, spec: _Format) -> np.ndarray:
    """Parse a ground-truth file into 0-based ``x, y, w, h`` rows; blank lines are allowed only at the end."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: ground-truth file holds no boxes")
    return np.stack([_parse_line(line, f"{path}:{number}", spec) for number, line in enumerate(lines, start=1)])


def _ground_truth(folder: Path) -> tuple[_Format, dict[str, Path]]:
    """The folder's format and its ground-truth files by sequence name: one, or one per target (OTB's
    ``groundtruth_rect.1.txt``, ``.2.txt``: the sequences ``NAME-1``, ``NAME-2``)."""
    for spec in _FORMATS:
        if (folder / spec.ground_truth).is_file():
            return spec, {folder.name: folder / spec.ground_truth}
    targets = sorted((int(match[1]), folder / match[0]) for match in
                     (_OTB_TARGET_FILE.fullmatch(path.name) for path in folder.iterdir()) if match)
    if targets:
        return _FORMATS[0], {f"{folder.name}-{number}": path for number, path in targets}
    expected = ", ".join(GROUND_TRUTH_FILES)
    raise ValueError(f"{folder}: not a tracking sequence (no ground-truth file; expected one of {expected}, or OTB's "
                     "groundtruth_rect.N.txt per target)")


def _first_frame(folder: Path, spec: _Format, frames: Path) -> int:
    """Where the annotation starts in ``frames``: 0, except for the OTB sequences that number it otherwise."""
    first = _OTB_FIRST_ANNOTATED.get(folder.name)
    if spec.name != "otb" or first is None or not frames.is_dir():
        return 0
    numbers = sorted(int(path.stem) for path in frames.iterdir() if path.stem.isdigit())
    return first - numbers[0] if numbers and numbers[0] < first else 0


def _trim_to_common_length(name: str, boxes: np.ndarray, frame_count: int) -> tuple[np.ndarray, int, int]:
    """Keep the frames that have a box; return the boxes kept and how many frames and boxes were left over."""
    box_count = len(boxes)
    unannotated, unmatched = max(frame_count - box_count, 0), max(box_count - frame_count, 0)
    if unannotated:
        logger.warning("%s: %d frames, %d boxes: last %d frames dropped", name, frame_count, box_count, unannotated)
    if unmatched:
        logger.warning("%s: %d frames, %d boxes: last %d boxes dropped", name, frame_count, box_count, unmatched)
    return boxes[: min(frame_count, box_count)], unannotated, unmatched


def load_sequences(path: str | os.PathLike) -> list[TrackingSequence]:
    """Load the sequence in folder ``path`` — or one per target, where OTB annotates several — recognising OTB, VOT
    or TLD by its ground-truth file.

    Raises :class:`FileNotFoundError` when the folder does not exist, :class:`ValueError` when it is not a sequence or
    its ground truth is malformed, and :class:`vidrnn.video.VideoReadError` when its frames cannot be read.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such sequence folder")
    spec, files = _ground_truth(folder)
    frames = spec.find_frames(folder)
    first = _first_frame(folder, spec, frames)
    frame_count = probe(frames, count=True).num_frames - first
    sequences = []
    for name, file in files.items():
        boxes, unannotated, unmatched = _trim_to_common_length(name, _read_boxes(file, spec), frame_count)
        sequences.append(TrackingSequence(name, frames, boxes, spec.name, unannotated, unmatched, first))
    return sequences


def load_sequence(path: str | os.PathLike) -> TrackingSequence:
    """The one sequence in folder ``path`` (see :func:`load_sequences`; a folder with several targets is refused)."""
    sequences = load_sequences(path)
    if len(sequences) > 1:
        names = ", ".join(sequence.name for sequence in sequences)
        raise ValueError(f"{path}: several targets ({names}); load them with load_sequences")
    return sequences[0]


def sequence_folders(root: str | os.PathLike, *, skip: Callable[[Path], bool] = lambda folder: False) -> list[Path]:
    """Every folder under ``root`` (``root`` included; symbolic links followed, each folder once, hidden ones and
    those ``skip`` names left out: :func:`~vidrnn.video.walk_visible`) that holds one of :data:`GROUND_TRUTH_FILES`:
    the sequences :func:`find_sequences` loads, found without decoding anything."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    return sorted(folder for folder, names in walk_visible(root, skip=skip)
                  if any(name in GROUND_TRUTH_FILES or _OTB_TARGET_FILE.fullmatch(name) for name in names))


class SequenceEntry(NamedTuple):
    """Where a sequence is, known without decoding anything: enough to split sequences and to compare splits."""

    #: The sequence folder (the one holding its ground truth).
    folder: Path
    #: The sequence's name: the folder's, or ``NAME-N`` for target N of an OTB folder with several.
    name: str
    #: Its video file or folder of images, which the targets of one folder share.
    frames: Path


def sequence_entries(root: str | os.PathLike, *,
                     skip: Callable[[Path], bool] = lambda folder: False) -> list[SequenceEntry]:
    """Every sequence under ``root`` (``root`` included; not in folders ``skip`` names), sorted by name, case
    ignored: the sequences :func:`find_sequences` loads, found without decoding."""
    entries = []
    for folder in sequence_folders(root, skip=skip):
        spec, files = _ground_truth(folder)
        frames = spec.find_frames(folder)
        entries += [SequenceEntry(folder, name, frames) for name in files]
    return sorted(entries, key=lambda entry: (entry.name.casefold(), str(entry.frames)))


def load_entries(entries: Sequence[SequenceEntry]) -> list[TrackingSequence]:
    """The sequences of ``entries``, in their order; a folder of several targets is loaded once."""
    loaded: dict[Path, dict[str, TrackingSequence]] = {}
    for entry in entries:
        if entry.folder not in loaded:
            loaded[entry.folder] = {sequence.name: sequence for sequence in load_sequences(entry.folder)}
    return [loaded[entry.folder][entry.name] for entry in entries]


def find_sequences(root: str | os.PathLike) -> list[TrackingSequence]:
    """Load every sequence folder under ``root`` (``root`` included), sorted by name, case ignored.

    A folder is a sequence when it holds one of :data:`GROUND_TRUTH_FILES`, so a benchmark tree can mix formats and
    nest them at any depth. Returns an empty list when there is none; one broken sequence raises rather than being
    skipped, because a silently smaller benchmark gives scores that cannot be compared.
    """
    return load_entries(sequence_entries(root))

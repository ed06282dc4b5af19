"""Single-object tracking sequences: frames plus one ground-truth box per frame, from OTB, GOT-10k, LaSOT, VOT and TLD
folders.

Five benchmark families store the same thing in five ways, and this module turns each into one record,
:class:`TrackingSequence`, whose boxes are always **0-based pixel** ``x, y, w, h`` (float64, ``[N, 4]``):

* **OTB**: ``img/*.jpg`` + ``groundtruth_rect.txt`` with ``x,y,w,h`` per line, 1-based: becomes ``x-1, y-1, w, h``.
  Following OTB's own conventions, a folder with one file per target (``groundtruth_rect.1.txt``, ``.2.txt``: Jogging,
  Skating2, ...) holds one sequence per target (``Jogging-1``, ``Jogging-2``), and David's annotation starts at its
  300th image (:attr:`TrackingSequence.first_frame`; the folder's name in any case, and only when its images
  outnumber its boxes by those before the 300th, as OTB's 770 images and 471 boxes do: another folder of that name
  is read from its first image); sequences whose image folder starts later (BlurCar1 at 0247.jpg) need nothing, their
  first image is their first annotated frame.
* **GOT-10k**: the frames (``00000001.jpg``, ...) in the folder itself + ``groundtruth.txt`` with ``x,y,w,h``,
  1-based (its maintainers: "all coordinate values are 1-based"), told from VOT by ``absence.label``,
  ``cover.label`` or ``meta_info.ini`` beside it. GOT-10k writes a box even where the target is absent; the label
  files say so: a frame whose ``cover.label`` is 0 (the official toolkit scores only cover > 0) or, without that
  file, whose ``absence.label`` is 1 is absent. Its test split holds only the first box (its server scores the rest).
* **LaSOT**: ``img/*.jpg`` + ``groundtruth.txt`` with ``x,y,w,h``, 1-based (LaSOT's toolkit is OTB's); absent frames
  are already boxes without area, and ``full_occlusion.txt`` / ``out_of_view.txt`` are left alone, as the
  evaluation toolkits leave them.
* **VOT**: ``color/*.jpg`` (or images directly in the folder) + ``groundtruth.txt`` with a rotated box as the polygon
  ``x1,y1,...,x4,y4``, an upright ``x,y,w,h`` or (VOT2020 on) a mask ``m<x>,<y>,<w>,<h>,<run lengths>`` per line,
  0-based: a polygon becomes its axis-aligned bounding box, a mask the tight box of its set pixels (the run lengths
  alternate unset and set pixels, unset first, row by row over the w x h region whose top-left pixel is x, y, as
  vot-toolkit reads them; a mask without a set pixel is an absent target).
* **TLD**: one video file (or images) + ``gt.txt`` with corners ``x1,y1,x2,y2``, 1-based and inclusive: becomes
  ``x1-1, y1-1, x2-x1+1, y2-y1+1``.

Three of them call their file ``groundtruth.txt``: a folder that holds GOT-10k's label or meta files is GOT-10k, one
with an ``img/`` folder is LaSOT, any other VOT. Layouts that keep the ground truth apart from the frames
(TrackingNet's and UAV123's ``anno/<sequence>.txt``) are not read: :func:`survey` counts the image folders and videos
that belong to no sequence and says how to arrange them (a folder per sequence, its frames and its ground truth),
so that a benchmark is never silently smaller than the folder holding it.

Values may be separated by commas, tabs or spaces (OTB mixes them, even within one file), and a line may end in
one (``298,160,48,80,``); two commas in a row hold an empty field, which is malformed (``10,20,30,40,,,,`` is a VOT
polygon cut short, not a box); a header line (column names, or one number such as a frame count) is malformed, its message says to delete it. The TLD
convention is the one OTB itself confirms: OTB's ``Jumping`` is TLD's ``02_jumping``, and its first box ``147,110,34,33`` is TLD's
``147,110,180,142`` read as 1-based inclusive corners.

**Absent targets.** A line holding ``NaN`` (any case; TLD writes it when the target leaves the view or is fully
occluded), a box without area (width or height 0 or less: ``0,0,0,0`` is how LaSOT marks an absent target; TLD's
marks, all four values 0 or all negative, before the inclusive +1 that makes ``x2 == x1`` a box one pixel wide), or
GOT-10k's label files (above) make that frame's whole box NaN; :attr:`TrackingSequence.visible` is false there. Evaluation
must skip such frames rather than score them, and training must not aim at them (a box without area has no centre
to search around and no size to take the logarithm of).

**Frames and boxes that disagree in number.** A sequence is the frames that have a box: its length is
``min(frames, boxes)``, counted from the first frame. Trailing frames without a box are dropped (OTB's Football1 has
81 images and 74 boxes, which cover the first 74) and counted in ``unannotated_frames``; trailing boxes without a
frame are dropped too and counted in ``unmatched_boxes``. Either way a warning is logged, saying that the annotation
is taken to start at the first frame: ground truth that starts later (a sub-sequence of a longer clip, such as
UAV123's) would pair every box with the wrong frame, and the count alone cannot tell. Surplus boxes are not an
error because a video file holds as many frames as the decoder delivers, and decoders can disagree by a frame at the
end of a stream: refusing the whole sequence on one machine for that would cost more than it protects. The price is
that a frame missing from the *middle* of a sequence cannot be detected here; the warning is the cue to look. Frames
are always counted by decoding (:func:`vidrnn.video.probe` with ``count=True``), never taken from the container's
header, which can be wrong (TLD's ``david.mpg`` declares 760 frames and holds 761).

Malformed ground truth (a wrong number of values, text that is not a number, a mask whose runs overflow its region,
a GOT-10k label file of another length than the boxes) raises :class:`ValueError` naming ``file:line``, so a broken
download is found at load time and not as a mysterious tracking score. TLD corners reversed by more than the
inclusive pixel are malformed rows: in several rows (:data:`_REVERSED_ROWS_REFUSED`) they are a file of
``x, y, w, h``, refused; a lone one is read as an absent frame, with a warning naming the file and its line. Boxes lying outside the frames in a noticeable share (:data:`_OUTSIDE_LIMITS`) are warned about as the
sequence loads, when its frames are probed: ground truth in another layout or resolution than its frames.
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

from vidrnn.distributed import warn_once, warnings_from_rank_zero
from vidrnn.files import file_sha256
from vidrnn.text import first_few, text_lines
from vidrnn.video import (
    IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FrameSize, UnreadableFolders, is_hidden, iter_frames, probe, read_frames,
    walk_visible,
)

__all__ = [
    "GROUND_TRUTH_FILES", "MEAN_ROW", "SEQUENCE_LAYOUTS", "SequenceEntry", "Survey", "TrackingSequence", "find_sequences",
    "ground_truth_digest", "load_entries", "load_sequence", "load_sequences", "outside_frame_causes",
    "sequence_entries", "survey",
]

logger = logging.getLogger(__name__)

#: What a table of scores names its mean rows (``tracking_scores.csv``), where a sequence is named by its path under
#: the folder read: no sequence directly in that folder may be named so.
MEAN_ROW = "MEAN"


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
    #: The file the boxes were read from, for messages that must say what to fix (``None``: made in memory).
    ground_truth: Path | None = None
    #: The frames' ``(width, height)`` as probed when loaded, to hold the boxes against (``None``: not known).
    frame_size: tuple[int, int] | None = None

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
        """All frames of the sequence as RGB uint8 ``[N, H, W, 3]``; for long clips prefer :meth:`iter_frames`. Frames
        of another size than the first, and damaged stretches, are refused (:func:`~vidrnn.video.iter_frames`'
        ``frame_exact``): the boxes are in each frame's own pixels and numbering."""
        return read_frames(self.frames, self._indices, size=size, frame_exact=True)

    def iter_frames(self, *, size: FrameSize = None, chunk_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(frame_indices, frames)`` chunks (indices into ``frames``), so memory holds one chunk whatever the
        sequence's length."""
        return iter_frames(self.frames, self._indices, size=size, chunk_size=chunk_size, frame_exact=True)

    def name_under(self, root: Path) -> str:
        """The sequence's name preceded by the folders between ``root`` and its own folder (``otb/Couple``, an OTB
        folder's targets ``otb/Jogging-1``): names alone can repeat under a root (``a/Seq``, ``b/Seq``). Its name
        alone when its folder is ``root`` itself, lies outside it, or is unknown (a sequence made in memory)."""
        return self.name if self.ground_truth is None else _name_under(self.ground_truth.parent, self.name, root)

    @property
    def _indices(self) -> range:
        return range(self.first_frame, self.first_frame + self.num_frames)


def _claims_any(folder: Path) -> bool:
    return True


def _marks_none(ground_truth: Path, count: int) -> np.ndarray:
    return np.zeros(count, dtype=bool)


@dataclass(frozen=True)
class _Format:
    """What tells one benchmark format from another, and how to turn its lines into ``x, y, w, h``."""

    name: str
    ground_truth: str
    values_per_line: tuple[int, ...]
    line_meaning: str
    to_xywh: Callable[[np.ndarray], np.ndarray]
    find_frames: Callable[[Path], Path]
    #: Whether a folder holding ``ground_truth`` is in this format: several benchmarks name their file alike.
    claims: Callable[[Path], bool] = _claims_any
    #: ``[N]`` frames marked absent beside the boxes (GOT-10k keeps a box there and says so in label files), given
    #: the ground-truth file and its number of boxes.
    marked_absent: Callable[[Path, int], np.ndarray] = _marks_none
    #: Whether lines may be VOT2020's masks (``m<x>,<y>,<w>,<h>,<run lengths>``) instead of values.
    masks: bool = False


def _one_based_box(values: np.ndarray) -> np.ndarray:
    x, y, width, height = values
    return np.array([x - 1, y - 1, width, height])


def _vot_box(values: np.ndarray) -> np.ndarray:
    if len(values) == 4:
        return values
    xs, ys = values[0::2], values[1::2]
    return np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()])


def _tld_box(values: np.ndarray) -> np.ndarray:
    """Inclusive 1-based corners as ``x, y, w, h``: ``x2 == x1`` is a box one pixel wide. TLD's occlusion marks
    (all four values 0, or all negative) are absent, read before the inclusive +1 that would make them visible 1x1
    boxes. Corners reversed by more than that pixel raise :class:`_ReversedCorners`: a malformed row, or, in several
    rows, a file of ``x, y, w, h`` read as corners (:func:`_judge_reversed`)."""
    if (values == 0).all() or (values < 0).all():
        return np.full(4, np.nan)
    x1, y1, x2, y2 = values
    _refuse_reversed("x", x1, x2)
    _refuse_reversed("y", y1, y2)
    return np.array([x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1])


class _ReversedCorners(ValueError):
    """A TLD row whose second corner lies more than the inclusive pixel before its first."""


def _refuse_reversed(axis: str, first: float, second: float) -> None:
    """Refuse a second corner more than the inclusive pixel before the first on ``axis``; a reversal by less keeps
    its inclusive reading, a box under a pixel wide (none left at the whole pixel: absent)."""
    if second < first - 1:
        raise _ReversedCorners(f"{axis}2 ({second:g}) is less than {axis}1 ({first:g})")


#: Reversed rows that make a TLD file one of ``x, y, w, h`` read as corners: at least this many, and this share of
#: its boxes. A real annotation's swapped row is rare (none in the 58 TLD-layout files of the project's data); a file
#: of ``x, y, w, h`` reverses every row whose width is less than its x, and reads the others as wrong boxes.
_REVERSED_ROWS_REFUSED = 2
_REVERSED_SHARE_REFUSED = 0.05


def _judge_reversed(path: Path, reversed_rows: list[tuple[int, str]], visible: int) -> None:
    """Refuse a file with reversed corners in several rows (:data:`_REVERSED_ROWS_REFUSED`, and a share
    :data:`_REVERSED_SHARE_REFUSED` of its boxes): ``x, y, w, h`` read as corners, where the rows that are not
    reversed are wrong boxes too; otherwise warn about the lone one, read as an absent frame: one swapped row must not
    make a real sequence unloadable, nor be answered with advice that would corrupt a correct file."""
    if not reversed_rows:
        return
    numbers = [str(number) for number, _ in reversed_rows]
    first_number, first_reason = reversed_rows[0]
    boxes = len(reversed_rows) + visible
    if len(reversed_rows) >= _REVERSED_ROWS_REFUSED and len(reversed_rows) >= _REVERSED_SHARE_REFUSED * boxes:
        raise ValueError(f"{path}: corners reversed in {len(reversed_rows)} of the {boxes} boxes (lines "
                         f"{first_few(numbers, 5)}); line {first_number}: {first_reason}; this layout's rows are "
                         "x1,y1,x2,y2 — is this file x,y,w,h? Then convert it, or keep it as an OTB folder (img/ + "
                         "groundtruth_rect.txt, 1-based x,y,w,h); else correct those rows")
    line = f"line {numbers[0]}" if len(numbers) == 1 else f"lines {first_few(numbers, 5)}"
    warn_once(logger, "%s: corners reversed on %s (%s): malformed x1,y1,x2,y2 rows, read as absent frames; correct "
              "them to score or train on those frames", path, line, first_reason)


def _img_frames(folder: Path) -> Path:
    images = folder / "img"
    if not images.is_dir():  # only OTB gets here: a LaSOT folder is one with img/
        raise ValueError(f"{folder}: OTB sequence without an img/ folder of frames")
    return images


def _vot_frames(folder: Path) -> Path:
    images = folder / "color"
    return images if images.is_dir() else folder


def _folder_frames(folder: Path) -> Path:
    return folder


#: GOT-10k's files beside ``groundtruth.txt``: any of them tells its folder from a VOT one.
_GOT10K_FILES = ("absence.label", "cover.label", "meta_info.ini")


def _got10k_claims(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _GOT10K_FILES)


def _lasot_claims(folder: Path) -> bool:
    return (folder / "img").is_dir()


def _read_labels(path: Path, ground_truth: Path, count: int) -> np.ndarray:
    """One whole number per line of a GOT-10k label file, as many as ``ground_truth`` has boxes."""
    lines = text_lines(path)
    if len(lines) != count:
        raise ValueError(f"{path}: {len(lines)} lines for the {count} boxes of {ground_truth}; a label file has one "
                         "line per frame")
    return np.array([_parse_whole(line.strip(), f"{path}:{number}") for number, line in enumerate(lines, start=1)])


def _got10k_absent(ground_truth: Path, count: int) -> np.ndarray:
    """GOT-10k's frames without a target to score: ``cover.label`` 0 (fully hidden; the official toolkit scores only
    frames with cover > 0) or, without that file, ``absence.label`` 1. Its test split has neither: nothing marked."""
    cover, absence = ground_truth.with_name("cover.label"), ground_truth.with_name("absence.label")
    if cover.is_file():
        return _read_labels(cover, ground_truth, count) == 0
    if absence.is_file():
        return _read_labels(absence, ground_truth, count) == 1
    return _marks_none(ground_truth, count)


def _tld_frames(folder: Path) -> Path:
    videos = sorted(p for p in folder.iterdir()
                    if p.suffix.lower() in VIDEO_EXTENSIONS and not is_hidden(p.name) and p.is_file())
    if len(videos) > 1:
        names = ", ".join(p.name for p in videos)
        raise ValueError(f"{folder}: TLD sequence with several video files ({names}); expected one")
    return videos[0] if videos else folder


#: Checked in this order; the first whose ground-truth file a folder holds, and which claims the folder, decides its
#: format. GOT-10k and LaSOT come before VOT, which takes any other folder with a ``groundtruth.txt``.
_FORMATS = (
    _Format("otb", "groundtruth_rect.txt", (4,), "x,y,w,h", _one_based_box, _img_frames),
    _Format("got10k", "groundtruth.txt", (4,), "x,y,w,h", _one_based_box, _folder_frames, _got10k_claims,
            _got10k_absent),
    _Format("lasot", "groundtruth.txt", (4,), "x,y,w,h", _one_based_box, _img_frames, _lasot_claims),
    _Format("vot", "groundtruth.txt", (8, 4), "x1,y1,...,x4,y4 or x,y,w,h, or a mask m<x>,<y>,<w>,<h>,<run lengths>",
            _vot_box, _vot_frames, masks=True),
    _Format("tld", "gt.txt", (4,), "x1,y1,x2,y2", _tld_box, _tld_frames),
)

#: The ground-truth file names that mark a folder as a tracking sequence.
GROUND_TRUTH_FILES = tuple(dict.fromkeys(spec.ground_truth for spec in _FORMATS))
#: What a sequence folder looks like, for messages about folders that hold none.
SEQUENCE_LAYOUTS = (
    "a sequence is a folder holding its frames and its ground truth: img/ + groundtruth_rect.txt (OTB: x,y,w,h, "
    "1-based), the frames + groundtruth.txt + absence.label, cover.label or meta_info.ini (GOT-10k: x,y,w,h, 1-based), "
    "img/ + groundtruth.txt (LaSOT: x,y,w,h, 1-based), color/ or the frames + groundtruth.txt (VOT: polygons, x,y,w,h "
    "or masks, 0-based), or a video file or the frames + gt.txt (TLD: x1,y1,x2,y2, 1-based)"
)
#: OTB's files for sequences with several targets, one file each (Jogging, Skating2, Human4, ...).
_OTB_TARGET_FILE = re.compile(r"groundtruth_rect\.(\d+)\.txt")
#: OTB sequences whose images start before their annotation (OTB's own sequence configuration): the number of the
#: first annotated image, by the folder's name in lower case (a copy renamed ``david`` is still David). Applied only
#: when the folder still holds the images before it and has that many more images than boxes (David: 770 and 471).
_OTB_FIRST_ANNOTATED = {"david": 300}

#: One comma (spaces around it allowed) or a run of whitespace: two commas in a row hold an empty field.
_SEPARATOR = re.compile(r"\s*,\s*|\s+")


class _HeaderLike(ValueError):
    """A line no box looks like — text where a box's value belongs, or one number alone: on the first line, likely a
    header (column names, or a frame count as some tools write)."""


def _parse_value(token: str, where: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise _HeaderLike(f"{where}: {token!r} is not a number") from None
    if math.isinf(value):
        raise ValueError(f"{where}: {token!r} is not a finite number")
    return value


def _parse_whole(token: str, where: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise ValueError(f"{where}: {token!r} is not a whole number") from None


def _mask_box(text: str, where: str) -> np.ndarray:
    """The tight box of a VOT mask ``<x>,<y>,<w>,<h>,<run lengths>`` (the text after its ``m``), NaN without a set
    pixel. As vot-toolkit reads it (``create_mask_from_string``, ``rle_to_mask``): a w x h region whose top-left pixel
    is x, y, and run lengths that alternate unset and set pixels, unset first, over the region row by row."""
    tokens = _SEPARATOR.split(text.strip())
    if len(tokens) < 5:
        raise ValueError(f"{where}: a mask needs x, y, w, h and run lengths (m<x>,<y>,<w>,<h>,<runs>), found "
                         f"{len(tokens)} values")
    left, top, width, height, *runs = (_parse_whole(token, where) for token in tokens)
    if min(width, height, *runs) < 0:
        raise ValueError(f"{where}: a mask's size and run lengths cannot be negative")
    if sum(runs) > width * height:
        raise ValueError(f"{where}: the mask's run lengths add up to {sum(runs)}, more than the {width}x{height} "
                         f"region's {width * height} pixels")
    pixels = np.zeros(width * height, dtype=bool)
    pixels[: sum(runs)] = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    rows, columns = np.nonzero(pixels.reshape(height, width))
    if not len(rows):
        return np.full(4, np.nan)
    return np.array([left + columns.min(), top + rows.min(), np.ptp(columns) + 1, np.ptp(rows) + 1], dtype=np.float64)


def _parse_line(line: str, where: str, spec: _Format) -> np.ndarray:
    """One line as an ``x, y, w, h`` box; any NaN, or no area, blanks the whole box: a partly known box is no box,
    and one without area marks an absent target."""
    text = line.strip()
    if spec.masks and text.startswith("m"):
        return _mask_box(text[1:], where)
    text = text[:-1].rstrip() if text.endswith(",") else text  # one trailing separator, as tools write: 298,160,48,80,
    tokens = _SEPARATOR.split(text) if text else []
    if len(tokens) not in spec.values_per_line:
        counts = " or ".join(str(n) for n in spec.values_per_line)
        malformed = _HeaderLike if len(tokens) == 1 else ValueError
        raise malformed(f"{where}: expected {counts} values ({spec.line_meaning}), found {len(tokens)}: {line!r}")
    values = np.array([_parse_value(token, where) for token in tokens])
    box = spec.to_xywh(values)
    return box if box[2] > 0 and box[3] > 0 and not np.isnan(box).any() else np.full(4, np.nan)


def _read_boxes(path: Path, spec: _Format) -> np.ndarray:
    """Parse a ground-truth file into 0-based ``x, y, w, h`` rows, NaN where the target is absent (by the line or by
    the format's marks beside it); blank lines are allowed only at the end."""
    lines = text_lines(path)
    if not lines:
        raise ValueError(f"{path}: ground-truth file holds no boxes")
    rows, reversed_rows = [], []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(_first_box(line, path, spec) if number == 1 else _parse_line(line, f"{path}:{number}", spec))
        except _ReversedCorners as error:
            rows.append(np.full(4, np.nan))
            reversed_rows.append((number, str(error)))
    boxes = np.stack(rows)
    _judge_reversed(path, reversed_rows, int((~np.isnan(boxes).any(axis=1)).sum()))
    boxes[spec.marked_absent(path, len(boxes))] = np.nan
    return boxes


def _first_box(line: str, path: Path, spec: _Format) -> np.ndarray:
    """Line 1 as a box; text there that is not a number, or one number alone, is likely a header (column names, a
    frame count), which no layout has, so the message says to delete it (never skipped: a header cannot be told from a
    broken first box for sure)."""
    try:
        return _parse_line(line, f"{path}:1", spec)
    except _HeaderLike as error:
        hint = f"a header line? Delete it: {path} holds one box per line, {spec.line_meaning}"
        raise ValueError(f"{error}; {hint}") from None


def _ground_truth(folder: Path) -> tuple[_Format, dict[str, Path]]:
    """The folder's format and its ground-truth files by sequence name: one, or one per target (OTB's
    ``groundtruth_rect.1.txt``, ``.2.txt``: the sequences ``NAME-1``, ``NAME-2``)."""
    for spec in _FORMATS:
        if (folder / spec.ground_truth).is_file() and spec.claims(folder):
            return spec, {folder.name: folder / spec.ground_truth}
    targets = sorted((int(match[1]), folder / match[0]) for match in
                     (_OTB_TARGET_FILE.fullmatch(path.name) for path in folder.iterdir()) if match)
    if targets:
        return _FORMATS[0], {f"{folder.name}-{number}": path for number, path in targets}
    expected = ", ".join(GROUND_TRUTH_FILES)
    raise ValueError(f"{folder}: not a tracking sequence (no ground-truth file; expected one of {expected}, or OTB's "
                     "groundtruth_rect.N.txt per target)")


def _first_frame(folder: Path, spec: _Format, frames: Path, frame_count: int, box_count: int) -> int:
    """Where the annotation starts in ``frames``: 0, except for the OTB sequences that number it otherwise — and only
    when the counts say it is that sequence: its images outnumber its boxes by exactly the images before the first
    annotated one. A folder that merely shares the name (any case) is read from its first image, like any other."""
    first = _OTB_FIRST_ANNOTATED.get(folder.name.casefold())
    if spec.name != "otb" or first is None or not frames.is_dir():
        return 0
    numbers = sorted(int(path.stem) for path in frames.iterdir() if path.stem.isdigit())
    before = first - numbers[0] if numbers else 0
    return before if before > 0 and frame_count - box_count == before else 0


def _trim_to_common_length(name: str, boxes: np.ndarray, frame_count: int) -> tuple[np.ndarray, int, int]:
    """Keep the frames that have a box; return the boxes kept and how many frames and boxes were left over. The
    warning says how they were paired: ground truth that starts at a later frame (a sub-sequence of a longer video)
    cannot be told from one that ends early, and would pair every box with the wrong frame."""
    box_count = len(boxes)
    unannotated, unmatched = max(frame_count - box_count, 0), max(box_count - frame_count, 0)
    pairing = "the annotation is assumed to start at the first frame; if it starts later, every box is mis-paired"
    if unannotated:
        warn_once(logger, "%s: %d frames, %d boxes: last %d frames dropped (%s)", name, frame_count, box_count,
                  unannotated, pairing)
    if unmatched:
        warn_once(logger, "%s: %d frames, %d boxes: last %d boxes dropped (%s)", name, frame_count, box_count,
                  unmatched, pairing)
    return boxes[: min(frame_count, box_count)], unannotated, unmatched


def load_sequences(path: str | os.PathLike) -> list[TrackingSequence]:
    """Load the sequence in folder ``path`` — or one per target, where OTB annotates several — recognising OTB,
    GOT-10k, LaSOT, VOT or TLD by its ground-truth file and what lies beside it.

    Raises :class:`FileNotFoundError` when the folder does not exist, :class:`ValueError` when it is not a sequence or
    its ground truth is malformed, and :class:`vidrnn.video.VideoReadError` when its frames cannot be read.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such sequence folder")
    spec, files = _ground_truth(folder)
    frames = spec.find_frames(folder)
    with warnings_from_rank_zero():  # every process of a DDP fit loads the same sequences
        info = probe(frames, count=True)
    sequences = []
    for name, file in files.items():
        boxes = _read_boxes(file, spec)
        first = _first_frame(folder, spec, frames, info.num_frames, len(boxes))
        boxes, unannotated, unmatched = _trim_to_common_length(name, boxes, info.num_frames - first)
        sequence = TrackingSequence(name, frames, boxes, spec.name, unannotated, unmatched, first, file,
                                    (info.width, info.height))
        _warn_outside_frame(sequence)
        sequences.append(sequence)
    return sequences


#: How much of the visible boxes may lie outside the frames before a sequence is warned about: ``(share of a box's
#: area inside the frame below which it counts, share of the boxes that may count)``. A box mostly outside (half its
#: area) in a tenth of the frames, or reaching past the edge (under 99 % inside) in a quarter of them: corners read as
#: x,y,w,h reach past it wherever x1 + x2 exceeds the frame's width (68 % of a Coke clip's boxes), boxes at another
#: resolution mostly lie outside. No real annotation comes near: of the 62 sequences of ../shared/data/tracking-train
#: and tracking none has a box mostly outside, and one (Biker) 5 % of its boxes past the edge.
_OUTSIDE_LIMITS = ((0.5, 0.1), (0.99, 0.25))


def _share_inside(boxes: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """The share of each ``x, y, w, h`` box's area that lies inside a frame of ``(width, height)``."""
    low = np.clip(boxes[:, :2], 0, frame_size)
    high = np.clip(boxes[:, :2] + boxes[:, 2:], 0, frame_size)
    return np.prod(high - low, axis=1) / np.prod(boxes[:, 2:], axis=1)


def outside_frame_causes(sequence: TrackingSequence) -> str:
    """The likely causes of boxes outside the frames of a sequence loaded from its files, in words: said by the warning
    about such boxes and by the refusal of a first box outside the frame, so that both point at what to check."""
    layout = next(spec.line_meaning for spec in _FORMATS if spec.name == sequence.format)
    return (f"likely {sequence.ground_truth} does not hold {layout} as its layout reads it (corners x1,y1,x2,y2 read "
            "as x,y,w,h), or its boxes were annotated at another resolution than these frames")


def _warn_outside_frame(sequence: TrackingSequence) -> None:
    """Warn when a noticeable share of the visible boxes lie outside the frames (:data:`_OUTSIDE_LIMITS`): the ground
    truth then is likely in another layout than its file name says, or at another resolution than the frames, and
    would train and score silently wrong boxes."""
    boxes = sequence.boxes[sequence.visible]
    inside = _share_inside(boxes, sequence.frame_size)
    for least_inside, share in _OUTSIDE_LIMITS:
        outside = int((inside < least_inside).sum())
        if outside and outside >= share * len(boxes):
            width, height = sequence.frame_size
            warn_once(logger, "%s: %d of %d boxes (%.0f %%) lie %s outside the %dx%d frames of %s: %s; check it "
                      "before training or scoring on it", sequence.name, outside, len(boxes),
                      100 * outside / len(boxes), "mostly" if least_inside <= 0.5 else "partly", width, height,
                      sequence.frames, outside_frame_causes(sequence))
            return


def load_sequence(path: str | os.PathLike) -> TrackingSequence:
    """The one sequence in folder ``path`` (see :func:`load_sequences`; a folder with several targets is refused)."""
    sequences = load_sequences(path)
    if len(sequences) > 1:
        names = ", ".join(sequence.name for sequence in sequences)
        raise ValueError(f"{path}: several targets ({names}); load them with load_sequences")
    return sequences[0]


def _name_under(folder: Path, name: str, root: Path) -> str:
    """:meth:`TrackingSequence.name_under` of sequence ``name`` of ``folder``."""
    if not folder.parent.is_relative_to(root):
        return name
    return (folder.parent.relative_to(root) / name).as_posix()


class SequenceEntry(NamedTuple):
    """Where a sequence is, known without decoding anything: enough to split sequences and to compare splits."""

    #: The sequence folder (the one holding its ground truth).
    folder: Path
    #: The sequence's name: the folder's, or ``NAME-N`` for target N of an OTB folder with several.
    name: str
    #: Its video file or folder of images, which the targets of one folder share.
    frames: Path


def _holds_ground_truth(names: list[str]) -> bool:
    return any(name in GROUND_TRUTH_FILES or _OTB_TARGET_FILE.fullmatch(name) for name in names)


def _frames_in(folder: Path, names: list[str]) -> list[Path]:
    """What in ``folder`` could be a sequence's frames: the folder itself when it holds images, and its videos."""
    suffixes = [Path(name).suffix.lower() for name in names]
    return ([folder] if any(suffix in IMAGE_EXTENSIONS for suffix in suffixes) else []) + [
        folder / name for name, suffix in zip(names, suffixes) if suffix in VIDEO_EXTENSIONS]


def _annotations_apart(root: Path, folder: Path, names: list[str]) -> bool:
    """Whether ``folder`` holds ground truth kept apart from its frames: text files in or under a folder named
    ``anno`` (TrackingNet's ``TRAIN_k/anno/<seq>.txt``, UAV123's ``anno/UAV123/<seq>.txt``)."""
    parts = (root.name, *folder.relative_to(root).parts)
    return any(part.casefold() == "anno" for part in parts) and any(name.endswith(".txt") for name in names)


def _self_and_parents(path: Path) -> set[Path]:
    real = path.resolve()
    return {real, *real.parents}


@dataclass(frozen=True)
class Survey:
    """What one walk under ``root`` found: the sequences, and what looks like tracking data but no sequence reads,
    so that a benchmark in a layout vidrnn does not read is named rather than silently left out."""

    root: Path
    #: The sequences, sorted by name (case ignored).
    entries: list[SequenceEntry]
    #: Image folders and video files outside every sequence folder.
    unread: list[Path]
    #: Folders of ground truth kept apart from the frames (:func:`_annotations_apart`).
    apart: list[Path]

    def _advice(self) -> str:
        """What a sequence folder looks like, and what to do with annotations kept apart from their frames."""
        advice = SEQUENCE_LAYOUTS
        if self.apart:
            folders = first_few([str(folder.relative_to(self.root)) for folder in self.apart], 3)
            advice += (f". {folders} keep the ground truth apart from the "
                       "frames (TrackingNet's and UAV123's anno/<sequence>.txt), a layout vidrnn does not read: give "
                       "each sequence a folder of its own holding its frames and its ground-truth file (img/ + "
                       "groundtruth_rect.txt for 1-based x,y,w,h such as UAV123's, the frames + groundtruth.txt for "
                       "0-based x,y,w,h) with exactly the frames its boxes annotate, from the first box's frame on "
                       "(UAV123's sub-sequences start later in their frame folder)")
        return advice

    def unread_text(self) -> str:
        """The image folders and videos that belong to no sequence, counted, with a few examples."""
        examples = first_few([str(path.relative_to(self.root)) for path in self.unread], 3)
        return f"{len(self.unread)} image folders or video files belong to no sequence and are not read ({examples})"

    def warn_unread(self) -> None:
        """Log, once per survey, what under ``root`` no sequence reads."""
        if self.unread:
            warn_once(logger, "%s: %s; %s", self.root, self.unread_text(), self._advice())

    def none_found(self) -> str:
        """Why ``root`` holds no sequence, for the error that says so."""
        unread = f"; {self.unread_text()}" if self.unread else ""
        return f"{self.root}: no tracking sequences found{unread}; {self._advice()}"


def survey(root: str | os.PathLike, *, skip: Callable[[Path], bool] = lambda folder: False) -> Survey:
    """Walk ``root`` (``root`` included; symbolic links followed, each folder once, hidden ones and those ``skip``
    names left out: :func:`~vidrnn.video.walk_visible`) once, without decoding: every folder holding one of
    :data:`GROUND_TRUTH_FILES` is a sequence (a benchmark tree can mix formats and nest them at any depth), and the
    frames outside all of them are counted. A folder it cannot list, or a link to one that leads nowhere, is refused
    (:class:`~vidrnn.video.UnreadableFolders`): a benchmark silently smaller gives scores that cannot be compared."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    folders, frames, apart, unreadable = [], [], [], []
    for folder, names in walk_visible(root, skip=skip, unreadable=unreadable.append):
        if _holds_ground_truth(names):
            folders.append(folder)
        frames += _frames_in(folder, names)
        if _annotations_apart(root, folder, names):
            apart.append(folder)
    if unreadable:
        raise UnreadableFolders(root, unreadable)
    entries = []
    for folder in folders:
        spec, files = _ground_truth(folder)
        entries += [SequenceEntry(folder, name, spec.find_frames(folder)) for name in files]
    read = {path.resolve() for path in folders} | {entry.frames.resolve() for entry in entries}
    unread = [path for path in frames if read.isdisjoint(_self_and_parents(path))]
    entries.sort(key=lambda entry: (entry.name.casefold(), str(entry.frames)))
    _refuse_names_alike(root, entries)
    return Survey(root, entries, unread, apart)


def _refuse_names_alike(root: Path, entries: list[SequenceEntry]) -> None:
    """Refuse (``ValueError``) names a table of scores, which names each sequence by its path under ``root``, could not
    tell apart: a sequence named :data:`MEAN_ROW` directly in ``root``, and two of one name in one folder (target 1 of
    an OTB folder ``X``, ``X-1``, beside a folder named ``X-1``; ``data.val_sequences`` could not tell them apart
    either). The folder named like a target is the one to rename: OTB names targets so."""
    seen: dict[str, SequenceEntry] = {}
    for entry in entries:
        label = _name_under(entry.folder, entry.name, root)
        if label == MEAN_ROW:
            raise ValueError(f"{entry.folder}: a sequence named {MEAN_ROW} in {root}, the name of the mean rows of "
                             "tracking_scores.csv, which names a sequence by its path under the folder it scores; "
                             "rename the folder")
        if label in seen:
            target, other = sorted((seen[label], entry), key=lambda alike: alike.folder.name == alike.name)
            raise ValueError(f"{label}: two sequences of this name under {root}: one of the targets of "
                             f"{target.folder} (an OTB folder's targets are named {target.folder.name}-1, "
                             f"{target.folder.name}-2, ...) and {other.folder}; rename the folder {other.folder}: "
                             "tables of scores and data.val_sequences could not tell them apart")
        seen[label] = entry


def sequence_entries(root: str | os.PathLike, *,
                     skip: Callable[[Path], bool] = lambda folder: False) -> list[SequenceEntry]:
    """Every sequence under ``root`` (``root`` included; not in folders ``skip`` names), sorted by name, case
    ignored: the sequences :func:`find_sequences` loads, found without decoding. Image folders and videos that no
    sequence reads are named in a warning (:meth:`Survey.warn_unread`)."""
    found = survey(root, skip=skip)
    found.warn_unread()
    return found.entries


def ground_truth_digest(entry: SequenceEntry) -> str:
    """The SHA-256 of ``entry``'s ground-truth file: what tells a sequence from another whatever its name and folder
    (unrelated datasets both hold a ``seq01``; a copy under another root is the same sequence), read without
    decoding a frame."""
    return file_sha256(_ground_truth(entry.folder)[1][entry.name])


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
    nest them at any depth. Returns an empty list when there is none (with a warning when it holds frames no sequence
    reads: :func:`sequence_entries`); one broken sequence raises rather than being skipped, because a silently
    smaller benchmark gives scores that cannot be compared.
    """
    return load_entries(sequence_entries(root))

"""Decoding video files and image folders into RGB uint8 frames with OpenCV.

Everything that turns bytes on disk into pixels lives here, and nothing else does. Two rules shape the code:

* Frames are read **sequentially**. Which frames to keep is decided before decoding; frames we skip are only
  ``grab()``-ed (demuxed, not converted), because ``CAP_PROP_POS_FRAMES`` seeking lands on the wrong frame for many
  codecs.
* The container's frame count is a hint, not a fact, and wrong both ways: many AVIs and MPEG-1 files state a frame
  or more too many; MKV, WebM and MPEG-TS store no count, so OpenCV estimates duration x frame rate, too few for a
  variable-frame-rate phone video or joined camcorder streams whose timestamps restart. Readers count what they
  actually decode, and :func:`read_sampled` reads on to the real end and re-plans when the hint was wrong either way.
* A video that holds far fewer frames than its container states (:data:`CUT_SHORT_FRACTION`,
  :data:`CUT_SHORT_FRAMES`) is still read, over the frames it holds, but :func:`read_sampled` says so
  (:class:`CutShort`): a file truncated by a broken download or copy would otherwise pass for a whole one. Only a
  count the container records (:data:`COUNTING_CONTAINERS`) can say so; an estimate from its duration cannot.
* A frame that fails to decode before the stated end (a damaged stretch in the middle of a file) is not the end:
  up to :data:`_MAX_FAILED_GRABS` failures in a row are passed over and reading goes on with the next good frame.

A video file and a folder of images (OTB/VOT sequences) look the same to callers: both are "a video" here.
"""

from __future__ import annotations

import abc
import errno
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

__all__ = [
    "ASSUMED_FPS",
    "COUNTING_CONTAINERS",
    "CUT_SHORT_FRACTION",
    "CUT_SHORT_FRAMES",
    "IMAGE_EXTENSIONS",
    "NOT_VIDEO_EXTENSIONS",
    "MAX_PLAUSIBLE_FPS",
    "VIDEO_EXTENSIONS",
    "CutShort",
    "FrameSize",
    "VideoInfo",
    "VideoReadError",
    "image_files",
    "is_hidden",
    "walk_visible",
    "UnreadableFolders",
    "listing_error",
    "unfollowable",
    "iter_frames",
    "probe",
    "read_frames",
    "read_sampled",
    "resize_frame",
]

VIDEO_EXTENSIONS = frozenset({
    ".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m2v", ".wmv", ".asf", ".flv", ".3gp", ".ogv",
    ".ts", ".mts", ".m2ts", ".vob", ".mxf", ".dv",  # the last six: camcorders, DVDs and broadcast
    # Names cameras, phones and older encoders give files FFmpeg reads by their content (each checked by decoding one):
    ".qt", ".f4v", ".divx", ".xvid", ".mp4v", ".3g2", ".3gpp", ".mpe", ".mod", ".tod", ".mjpeg", ".mjpg",
})
#: Containers that record their video's frame count (AVI's headers; the sample table of MP4, QuickTime and their
#: kin), so that OpenCV's frame count is a count. The others (MKV, WebM, MPEG-PS and -TS, FLV, ASF, Ogg, ...) record a
#: duration, and OpenCV estimates duration x frame rate: the file's duration, a longer audio track's included, so
#: such an estimate cannot tell a video cut short (:class:`CutShort`).
COUNTING_CONTAINERS = frozenset({".avi", ".divx", ".xvid", ".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".3gpp",
                                 ".f4v"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

#: Extensions of files that are no video (images, documents, tables, subtitles, audio, archives, arrays, code): a
#: dataset index passes them over quietly, as files without an extension (``README``), and :func:`walk_visible` a
#: broken link so named (no folder of videos lost). A file with any other extension an index does not read may be a
#: video under a name it does not know, and is named in a warning. GIFs are among those: an animated one
#: is a clip (TGIF-style datasets), a still one a thumbnail that must not become a clip, and no extension tells them
#: apart, so they are named for the user to convert, not read.
NOT_VIDEO_EXTENSIONS = IMAGE_EXTENSIONS | frozenset({
    ".heic", ".heif", ".svg", ".txt", ".md", ".rst", ".json", ".jsonl", ".csv", ".tsv", ".xml", ".yaml",
    ".yml", ".ini", ".log", ".html", ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".srt", ".vtt", ".ass", ".ssa", ".sub",
    ".wav", ".mp3", ".aac", ".flac", ".m4a", ".opus", ".wma", ".zip", ".tar", ".gz", ".tgz", ".7z", ".rar", ".npy",
    ".npz", ".pkl", ".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".h5", ".hdf5", ".mat", ".parquet", ".feather",
    ".markdown", ".py", ".sh", ".db",
})


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden (starts with ``.``), so that a search for videos passes it over.

    Hidden names hold no user's video but often wear a video extension: macOS's ``._clip.mp4`` metadata beside every
    clip copied from a Mac, a ``.cache`` or ``.trash`` folder. Every search of a folder for videos (datasets,
    ``vidrnn classify``) or for the frames of an image folder asks this one rule. ``lost+found``, the folder a file
    system keeps at a disk's root for its repairs, is passed over too: no class, and one a user can neither read nor
    remove.
    """
    return name.startswith(".") or name == "lost+found"


def _raise(problem: VideoReadError) -> None:
    raise problem


def walk_visible(root: str | os.PathLike, *,
                 skip: Callable[[Path], bool] = lambda folder: False,
                 unreadable: Callable[[VideoReadError], None] = _raise) -> Iterator[tuple[Path, list[str]]]:
    """Each folder under ``root`` (``root`` included) with the names of its visible files, sorted: what a search for
    videos or sequences looks through.

    Hidden names are passed over (:func:`is_hidden`). Links to folders are followed — a dataset made of linked
    session folders must not silently lose them — but a folder already reached on this walk (a link cycle, a second
    link to one folder) is not entered again, so a cycle ends and nothing is found twice. Folders for which ``skip``
    is true are not entered (a test split inside a training tree).

    What cannot be searched is handed to ``unreadable`` (by default raised), never passed over unsaid: a folder this
    user may not list (:func:`listing_error`), and a link that leads nowhere or in a loop (:func:`unfollowable`),
    which may have been a folder of videos on a disk not mounted (``session``, ``part.2``). A link named as a video
    or as an obvious non-video (:data:`NOT_VIDEO_EXTENSIONS`: ``notes.txt``, ``cover.jpg``) stays among the names, a
    file: the first to its reader, which says it is broken; the second to a search that passes it over.
    """
    visited = {os.path.realpath(root)}

    def first_visit(folder: Path) -> bool:
        real = os.path.realpath(folder)
        if real in visited:
            return False
        visited.add(real)
        return True

    def listing_failed(error: OSError) -> None:
        unreadable(listing_error(error))

    for directory, subdirs, files in os.walk(root, onerror=listing_failed, followlinks=True):
        subdirs[:] = [name for name in sorted(subdirs) if not is_hidden(name)
                      and not skip(Path(directory, name)) and first_visit(Path(directory, name))]
        names = sorted(name for name in files if not is_hidden(name))
        broken = {name: problem for name in names
                  if Path(name).suffix.lower() not in VIDEO_EXTENSIONS | NOT_VIDEO_EXTENSIONS
                  and (problem := unfollowable(Path(directory, name))) is not None}
        for problem in broken.values():
            unreadable(problem)
        yield Path(directory), [name for name in names if name not in broken]


def unfollowable(path: Path) -> VideoReadError | None:
    """Why ``path``, a symbolic link, cannot be followed (its target missing, or a loop), in the words a broken link
    to a video gets; ``None`` for a link that leads somewhere and for anything that is no link."""
    return _absent(path) if path.is_symlink() and not path.exists() else None


def listing_error(error: OSError) -> VideoReadError:
    """A folder that could not be listed (``error``, from ``os.scandir`` or ``os.listdir``), as the error naming it
    and what to do: listing is where a folder of mode 000 or on a stale mount fails, and Python names only the path."""
    folder = Path(os.fsdecode(error.filename)) if error.filename is not None else Path("?")
    if isinstance(error, PermissionError):
        return VideoReadError(folder, "cannot be listed: permission denied: this user may not read it; make it "
                              "readable (chmod, chown) or remove it")
    return VideoReadError(folder, f"cannot be listed ({error.strerror or error}): mount it, or remove it")


class UnreadableFolders(ValueError):
    """Folders and links under a dataset's root that its index could not search (:func:`walk_visible`'s
    ``unreadable``): refused, every one named, because a dataset silently lacking their videos trains and scores
    on what remains as if it were whole."""

    def __init__(self, root: Path, problems: Sequence[VideoReadError]) -> None:
        self.problems = list(problems)
        listed = "; ".join(str(problem) for problem in self.problems)
        what = "folder or link" if len(self.problems) == 1 else "folders or links"
        super().__init__(f"{root}: {len(self.problems)} {what} cannot be read, and the dataset would silently lack "
                         f"what they hold: {listed}. Mount what is not mounted, make the folders readable, or remove "
                         "the links, then run again")


#: The frame rate taken where a video states none usable: a folder of images, which carries none (OTB and VOT are
#: recorded at about 30 fps), or a file whose stated rate is missing or implausible (:data:`MAX_PLAUSIBLE_FPS`) —
#: the commonest rate of the phones and screen recorders that write such files.
ASSUMED_FPS = 30.0

#: The fastest stated frame rate taken as the container's word. Cameras store at most 240 fps (phones' slow motion;
#: broadcast and cinema at most 120); a faster stated rate is almost always a time base taken for a frame rate
#: (Matroska's millisecond, the "1000 fps" of screen recordings; MPEG-TS's 90 kHz clock), and sampling by time at
#: it keeps a frame or two of a whole clip. The container's frame count and duration cannot vouch for such a rate:
#: where it stores a count, its duration is that count at the same rate; where it stores only a duration, FFmpeg
#: already takes the average rate over it when the nominal one is above 210 fps (``av_guess_frame_rate``). High-speed
#: footage stored at its capture rate is read as :data:`ASSUMED_FPS` too, with the same warning.
MAX_PLAUSIBLE_FPS = 240.0

#: ``int``: resize so the shorter side has this many pixels (aspect kept); ``(height, width)``: exact size;
#: ``None``: keep the decoded size.
FrameSize = int | tuple[int, int] | None

#: FFmpeg "decodes" text files as rendered terminal art; such a stream is never a video a user meant.
_TEXT_CODECS = frozenset({"ansi", "bin", "xbin", "idf", "tty"})

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # FFmpeg warnings on broken files flood a terminal
# FFmpeg's own lines ("moov atom not found", "error while decoding MB ...") carry no file name, so among a batch's
# progress they name nothing; VideoReadError names the file and the reason. Read when OpenCV first opens a file, so
# a user who wants them back sets OPENCV_FFMPEG_LOGLEVEL (24: warnings, 48: debug) before starting. Quiet, not fatal:
# FFmpeg's MJPEG decoder says "No JPEG data found in image" of a damaged frame at its fatal level (and OpenCV prints
# what passes on stdout).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

#: Failed grabs in a row passed over before the container's stated end, where a damaged stretch of a file makes the
#: decoder refuse some frames and then go on (FFmpeg resynchronises at the next key frame); past the stated end one
#: failure is the end.
_MAX_FAILED_GRABS = 64


class VideoReadError(Exception):
    """A video (file or image folder) could not be read as asked.

    The single error type for every kind of bad video input: a missing path, an empty or corrupt file, a file that is
    not a video, a folder without images, a video with fewer frames than requested. ``path`` and ``reason`` say what
    to fix; batch jobs record them and carry on with the next video.
    """

    def __init__(self, path: str | os.PathLike, reason: str, *, frames_available: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        #: When the video ended early: how many frames it really has.
        self.frames_available = frames_available
        super().__init__(f"{self.path}: {reason}")


#: A video is cut short when it holds fewer than this share of the frames its container states, and at least
#: :data:`CUT_SHORT_FRAMES` fewer: containers that merely misstate their length (AVIs and MPEG-1 files over-state it
#: by a frame or more) stay within either bound, a truncated download or copy falls far outside both.
CUT_SHORT_FRACTION = 0.9
CUT_SHORT_FRAMES = 5


class CutShort(NamedTuple):
    """A video that holds far fewer frames than its container states: ``found`` frames decoded to its end, of
    ``stated``. It is read over the frames it holds (a usable result), and said: a truncated download or copy, or
    a long damaged stretch, would otherwise pass for a whole file."""

    found: int
    stated: int

    def __str__(self) -> str:
        return (f"decoded {self.found} of the {self.stated} frames its container states (a truncated or damaged "
                f"file?): only those {self.found} were sampled")


def _far_short(found: int, planned: int) -> bool:
    """Whether ``found`` frames fall far short of the ``planned`` ones (:data:`CUT_SHORT_FRACTION`,
    :data:`CUT_SHORT_FRAMES`): more than a container that misstates its length by a frame or two is off by."""
    return found < CUT_SHORT_FRACTION * planned and planned - found >= CUT_SHORT_FRAMES


def _shortfall(found: int, stated: int | None) -> CutShort | None:
    """The shortfall of a video that held ``found`` frames where its container records ``stated`` (None: records no
    count, only a duration OpenCV estimates one from), when it is cut short; else None."""
    if stated is None or not _far_short(found, stated):
        return None
    return CutShort(found, stated)


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns about a video without decoding its pixels."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    #: True when ``num_frames`` was counted frame by frame rather than taken from the container.
    counted: bool
    #: Set by :func:`read_sampled` when the video held far fewer frames than its container states.
    cut_short: CutShort | None = None
    #: True when ``num_frames`` is a frame count the container records (:data:`COUNTING_CONTAINERS`, or a folder's
    #: images) at a plausible frame rate, not an estimate from its duration: only such a count tells a video cut short.
    states_count: bool = False

    @property
    def duration(self) -> float:
        """Length in seconds (a rate is always above 0: :func:`_usable_fps`)."""
        return self.num_frames / self.fps


class _FrameSource(abc.ABC):
    """Sequential access to the frames of one video: ``grab`` moves on, ``retrieve`` decodes the grabbed frame."""

    fps: float
    width: int
    height: int
    declared_frames: int
    #: Whether ``declared_frames`` is a count the container records (see :attr:`VideoInfo.states_count`).
    states_count: bool
    #: Position of the first frame a damaged stretch took (grabs failed there and reading went on past it): the
    #: frames after it are numbered as decoded, no longer as in the file.
    damaged_at: int | None = None

    @abc.abstractmethod
    def grab(self) -> bool: ...

    @abc.abstractmethod
    def retrieve(self) -> np.ndarray:
        """Return the grabbed frame as RGB uint8 ``[H,W,3]``."""

    def close(self) -> None:
        pass

    def __enter__(self) -> _FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plausible_fps(stated: float) -> bool:
    """Whether a stated frame rate is taken as the container's word (above 0, at most :data:`MAX_PLAUSIBLE_FPS`)."""
    return math.isfinite(stated) and 0 < stated <= MAX_PLAUSIBLE_FPS


def _usable_fps(path: Path, stated: float) -> float:
    """The frame rate a file is read at: the one it states when plausible (above 0, at most
    :data:`MAX_PLAUSIBLE_FPS`), else :data:`ASSUMED_FPS`, with a warning naming the file — sampling by time and the
    duration depend on it, and a rate of 0 or 1000 would make either absurd without a word."""
    if _plausible_fps(stated):
        return stated
    warnings.warn(f"{path}: the container states {stated:g} frames a second, not a plausible frame rate (above 0, at "
                  f"most {MAX_PLAUSIBLE_FPS:g}): read as {ASSUMED_FPS:g} fps, which sampling by time and its duration "
                  "assume; remux the file with its real rate to use that", stacklevel=2)
    return ASSUMED_FPS


class _VideoFileSource(_FrameSource):
    def __init__(self, path: Path, decoder_threads: int) -> None:
        self.path = path
        # FFmpeg only: OpenCV's other backends read '%d' in a file name as an image-sequence pattern or a URL.
        self._cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, decoder_threads])
        if not self._cap.isOpened():
            self._cap.release()
            raise VideoReadError(path, "cannot be opened as a video (not a video file, or corrupt)")
        codec = int(self._cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1").strip().lower()
        if codec in _TEXT_CODECS:
            self._cap.release()
            raise VideoReadError(path, "is a text file, not a video")
        stated_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = _usable_fps(path, stated_fps)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.declared_frames = max(int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        # OpenCV tells no recorded count from its estimate (duration x rate), so the container's kind decides; a count
        # at an implausible rate (a time base taken for one) vouches for nothing.
        self.states_count = path.suffix.lower() in COUNTING_CONTAINERS and _plausible_fps(stated_fps)
        if self.width <= 0 or self.height <= 0:
            self._cap.release()
            raise VideoReadError(path, "has no video stream with a frame size")

    def grab(self) -> bool:
        return bool(self._cap.grab())

    def retrieve(self) -> np.ndarray:
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            raise VideoReadError(self.path, "a frame could not be decoded (corrupt or truncated stream)")
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()


def _natural_order(path: Path) -> list[tuple[int, int | str]]:
    """Sort key reading digit runs as numbers, so frames ``1, 2, ..., 10`` come in that order (not ``1, 10, 2``)."""
    return [(0, int(part)) if part.isdigit() else (1, part.casefold()) for part in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    """The frames of a folder of images, in the order they are read: files with an image extension, in natural
    order, hidden ones passed over (macOS's ``._0001.jpg`` beside every frame copied from a Mac); a folder that
    cannot be listed is a :class:`VideoReadError` naming it (:func:`listing_error`), as a bad video is."""
    try:
        names = os.listdir(folder)
    except OSError as error:
        raise listing_error(error) from error
    files = (folder / name for name in names)
    return sorted((p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS and not is_hidden(p.name) and p.is_file()),
                  key=_natural_order)


class _ImageFolderSource(_FrameSource):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._files = image_files(path)
        if not self._files:
            raise VideoReadError(path, "is a directory without image files (expected a video file or a folder of frames)")
        self._next = 0
        self.fps = ASSUMED_FPS
        self.declared_frames = len(self._files)
        self.states_count = True
        first = self._decode(self._files[0])
        self.height, self.width = first.shape[:2]

    def _decode(self, file: Path) -> np.ndarray:
        data = np.fromfile(file, dtype=np.uint8)  # np.fromfile + imdecode copes with any file name encoding
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise VideoReadError(file, "image frame could not be decoded")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def grab(self) -> bool:
        if self._next >= len(self._files):
            return False
        self._next += 1
        return True

    def retrieve(self) -> np.ndarray:
        return self._decode(self._files[self._next - 1])


def _absent(path: Path) -> VideoReadError:
    """Why a path that does not exist cannot be read. A symbolic link is named as one, with where it leads: ``ls``
    lists a broken link, so "no such file" would send the user looking for the wrong thing."""
    if not path.is_symlink():
        return VideoReadError(path, "no such file or directory")
    try:
        path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return VideoReadError(path, "is a symbolic link in a loop (it never reaches a file or folder): fix or remove it")
    return VideoReadError(path, f"is a symbolic link to {os.path.realpath(path)}, which does not exist: fix or "
                          "remove the link")


def _open(path: str | os.PathLike) -> _FrameSource:
    path = Path(path)
    if not path.exists():
        raise _absent(path)
    if path.is_dir():
        return _ImageFolderSource(path)
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:  # bytes of another encoding (an old Windows zip): OpenCV's FFmpeg crashes on the name
        raise VideoReadError(path, "file name is not valid UTF-8 (OpenCV cannot open it): rename the file") from None
    if not path.is_file():
        raise VideoReadError(path, "is not a regular file")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise VideoReadError(path, f"cannot be read ({error.strerror})") from error
    if size == 0:
        raise VideoReadError(path, "is an empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise VideoReadError(path, "is not readable (permission denied)")
    # One decoding thread: vidrnn parallelises across videos (one per DataLoader worker) and leaves the remaining
    # cores to the CNN; FFmpeg's own frame threads would only compete with both.
    return _VideoFileSource(path, decoder_threads=1)


def resize_frame(frame: np.ndarray, size: FrameSize) -> np.ndarray:
    """Resize one frame as the decoder does (area interpolation when shrinking), for frames decoded elsewhere."""
    if size is None:
        return frame
    height, width = frame.shape[:2]
    if isinstance(size, int):
        scale = size / min(height, width)
        new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    else:
        new_height, new_width = size
    if (new_height, new_width) == (height, width):
        return frame
    shrinking = new_height * new_width < height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, (new_width, new_height), interpolation=interpolation)


def _output_shape(frame_shape: tuple[int, int], size: FrameSize) -> tuple[int, int]:
    height, width = frame_shape
    if size is None:
        return height, width
    if isinstance(size, int):
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return size


def _grab_next(source: _FrameSource, position: int) -> bool:
    """Move to the frame at ``position``; False at the end of the video. Before the stated end a failed grab is
    retried (see :data:`_MAX_FAILED_GRABS`): one damaged frame must not cut a video short."""
    if source.grab():
        return True
    if position >= source.declared_frames:
        return False
    if any(source.grab() for _ in range(_MAX_FAILED_GRABS - 1)):
        if source.damaged_at is None:
            source.damaged_at = position
        return True
    return False


def probe(path: str | os.PathLike, *, count: bool = False) -> VideoInfo:
    """Frame count, frame rate and size of a video.

    The frame count comes from the container unless it is missing or ``count=True``; then frames are counted by
    grabbing them all (no pixel conversion, so still fast). Raises :class:`VideoReadError` for unreadable input.
    """
    with _open(path) as source:
        num_frames, counted = source.declared_frames, False
        if count or num_frames <= 0:
            num_frames, counted = 0, True
            while _grab_next(source, num_frames):
                num_frames += 1
        if num_frames == 0:
            raise VideoReadError(path, "contains no decodable frames")
        return VideoInfo(str(path), num_frames, source.fps, source.width, source.height, counted,
                         states_count=source.states_count and not counted)


def iter_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | None = None,
    *,
    size: FrameSize = None,
    chunk_size: int = 64,
    frame_exact: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(frame_indices, frames)`` chunks of at most ``chunk_size`` frames, decoding sequentially.

    ``indices`` (sorted, unique is not required) selects frames; ``None`` reads every frame. Memory holds one chunk,
    so arbitrarily long videos stream. A requested index past the real end raises :class:`VideoReadError` with
    ``frames_available`` set, after the chunks before it were yielded.

    The frames come out at one size, the first frame read's (as ``size`` makes it): a frame of another size (a
    stream that changes resolution, a folder of images that mixes sizes) is resized to it. ``frame_exact=True`` is
    for frames with per-frame ground truth (tracking sequences): it refuses such a frame instead, with a
    :class:`VideoReadError` naming it (a resize would leave its box pointing elsewhere), and a damaged stretch too,
    which the reader otherwise passes over (the frames after it would be numbered as decoded, not as in the file, and
    paired with other frames' boxes).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    wanted = None if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
    if wanted is not None and wanted.size and wanted[0] < 0:
        raise ValueError(f"frame indices must be non-negative, got {int(wanted[0])}")
    with _open(path) as source:
        yield from _decode(source, path, wanted, size, chunk_size, frame_exact, read_to_end=False)


def _decode(source: _FrameSource, path: str | os.PathLike, wanted: np.ndarray | None, size: FrameSize,
            chunk_size: int, frame_exact: bool, read_to_end: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`iter_frames`' work on an open source. With ``read_to_end`` the frames after the last wanted one are
    grabbed too; the generator's return value is the number of frames the video was found to hold (when read to its
    end; else the frames grabbed)."""
    first_shape = (source.height, source.width)  # of the first frame read, once there is one
    buffer = np.empty((chunk_size, *_output_shape(first_shape, size), 3), dtype=np.uint8)
    kept: list[int] = []
    position = 0  # index of the next frame grab() would deliver
    cursor = 0  # next position in `wanted`
    while wanted is None or cursor < wanted.size:
        if not _grab_next(source, position):
            break
        if frame_exact and source.damaged_at is not None:
            yield from _flushed(kept, buffer)  # the frames before it are the file's own
            raise VideoReadError(path, f"frames from {source.damaged_at} on could not be decoded (a damaged stretch): "
                                 "the frames after it would no longer be numbered as in the file")
        if wanted is None or wanted[cursor] == position:
            frame = source.retrieve()
            if cursor == 0 and frame.shape[:2] != first_shape:  # the container's size was not the frames'
                first_shape = frame.shape[:2]
                buffer = np.empty((chunk_size, *_output_shape(first_shape, size), 3), dtype=np.uint8)
            elif frame_exact and frame.shape[:2] != first_shape:
                yield from _flushed(kept, buffer)
                raise VideoReadError(
                    path, f"frame {position} is {frame.shape[1]}x{frame.shape[0]} pixels, the first frame read "
                    f"{first_shape[1]}x{first_shape[0]}: the frames of one video or sequence must share a size")
            buffer[len(kept)] = resize_frame(frame, buffer.shape[1:3])
            kept.append(position)
            cursor += 1
            if len(kept) == chunk_size:
                yield from _flushed(kept, buffer)
                kept.clear()
        position += 1
    yield from _flushed(kept, buffer)
    if wanted is not None and cursor < wanted.size:
        raise VideoReadError(
            path,
            f"asked for frame {int(wanted[cursor])} but the video ends after {position} frames",
            frames_available=position,
        )
    if wanted is None and position == 0:
        raise VideoReadError(path, "contains no decodable frames", frames_available=0)
    while read_to_end and _grab_next(source, position):
        position += 1
    return position


def _flushed(kept: list[int], buffer: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The chunk being filled, if it holds any frame (also before an error: a stream's reader gets every frame up to
    the one that stopped it)."""
    if kept:
        yield np.asarray(kept), buffer[: len(kept)].copy()


def read_frames(path: str | os.PathLike, indices: Sequence[int], *, size: FrameSize = None,
                frame_exact: bool = False) -> np.ndarray:
    """Decode the frames at ``indices`` (in the order given, repeats allowed) as RGB uint8 ``[T,H,W,3]`` (``size`` and
    ``frame_exact`` as for :func:`iter_frames`)."""
    return _read(path, indices, size, frame_exact, read_to_end=False)[0]


def _read(path: str | os.PathLike, indices: Sequence[int], size: FrameSize, frame_exact: bool,
          read_to_end: bool) -> tuple[np.ndarray, int]:
    """:func:`read_frames`, and the number of frames the video holds when ``read_to_end`` (see :func:`_decode`)."""
    order = np.asarray(indices, dtype=np.int64)
    if order.size == 0:
        raise ValueError("read_frames needs at least one frame index")
    if order.min() < 0:
        raise ValueError(f"frame indices must be non-negative, got {int(order.min())}")
    positions, chunks = [], []
    with _open(path) as source:
        decoding = _decode(source, path, np.unique(order), size, 64, frame_exact, read_to_end)
        while True:
            try:
                chunk_positions, chunk = next(decoding)
            except StopIteration as end:
                length = end.value
                break
            positions.append(chunk_positions)
            chunks.append(chunk)
    frames = np.concatenate(chunks)
    return frames[np.searchsorted(np.concatenate(positions), order)], length


def read_sampled(
    path: str | os.PathLike,
    choose: Callable[[VideoInfo], np.ndarray],
    *,
    size: FrameSize = None,
    keep: Callable[[int], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """Probe a video, let ``choose`` pick frame indices from what the probe saw, and decode them (with ``keep``, only
    those at the positions ``keep`` gives among the chosen, told their number).

    The read goes on to the video's end, so its real frame count is known either way the container's was wrong. When
    the container over-stated it so that a frame chosen lies past the real end, or far over-stated it
    (:func:`_far_short`: a video cut short, whose chosen frames may all lie before the cut, yet were spread over a
    length it does not have), or under-stated it (frames after those the probe saw, which ``choose`` could never
    pick), ``choose`` picks again from the counted :class:`VideoInfo` and the video is decoded a second time. A
    container off by a frame or two whose chosen frames all exist keeps them: one pass, as before. Returns
    ``(frames, indices, info)`` with ``info`` describing the video as actually decoded; its ``cut_short`` says when
    the video held far fewer frames than its container states (:func:`_shortfall`).

    Whether ``choose`` picks again is decided on every frame it chose, kept or not: evaluation decodes the centred
    steps of a sampling's frames, which must be those of the choice extraction, decoding every chosen frame, ends
    with (a kept frame may exist where the last frame chosen does not).
    """
    info = probe(path)
    stated = info.num_frames if info.states_count else None
    chosen = np.asarray(choose(info), dtype=np.int64)
    indices = chosen if keep is None else chosen[keep(len(chosen))]
    try:
        frames, length = _read(path, indices, size, frame_exact=False, read_to_end=True)
        if length <= info.num_frames and not _far_short(length, info.num_frames) and (chosen < length).all():
            return frames, indices, info
    except VideoReadError as error:
        if not error.frames_available:
            raise
        length = error.frames_available
    info = VideoInfo(info.path, length, info.fps, info.width, info.height, counted=True,
                     cut_short=_shortfall(length, stated))
    chosen = np.asarray(choose(info), dtype=np.int64)
    indices = chosen if keep is None else chosen[keep(len(chosen))]
    return read_frames(path, indices, size=size), indices, info

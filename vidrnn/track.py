"""``vidrnn track``: follow one target through a video (or a folder of frames) from its box in the first frame.

Frames stream from the decoder in chunks and each box is written (and flushed) as soon as it is known, so memory
stays flat on long videos and an interrupted run keeps the rows it wrote. ``--render`` writes a copy of the video with
the box drawn. The checkpoint, the box and the output paths are checked before the first frame is decoded.

Frames are decoded at a working size: the longer side at most ``--max-side`` pixels (default 1280). The tracker cuts a
region around the target and resizes it to a fixed side (448 px by default) whatever the video's resolution, so the
pixels of a 4K or 8K frame beyond that mostly cost memory: a chunk of 16 decoded 4K frames takes 400 MB, of 1280x720
frames 44 MB. Boxes, given and written, stay in the video's own pixels: the first box is scaled down to the working
size and every box the tracker answers is scaled back up. Videos within the limit are decoded and tracked as they are.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidrnn.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vidrnn.pipes import stdout_reader_gone

__all__ = ["DEFAULT_MAX_SIDE", "WorkingScale", "add_track_parser", "run_track", "working_scale"]

#: The longer side, in pixels, of the frames ``vidrnn track`` decodes unless ``--max-side`` says otherwise (720p's).
DEFAULT_MAX_SIDE = 1280


@dataclass(frozen=True)
class WorkingScale:
    """The size frames are decoded at for tracking, and the factors from the video's pixels to the working frame's.

    ``size`` is what :func:`vidrnn.video.iter_frames` takes (``(height, width)``; ``None``: as the video is); ``x`` and
    ``y`` are the factors per axis (rounding the size to whole pixels makes them differ slightly). With pixel ``i``
    covering ``[i, i + 1)``, a resize maps every coordinate by these factors, so boxes scale exactly as the frame does.
    """

    size: tuple[int, int] | None = None
    x: float = 1.0
    y: float = 1.0

    def down(self, box: Iterable[float]) -> np.ndarray:
        """A box ``x, y, w, h`` in the video's pixels → in the working frame's."""
        return np.asarray(list(box), dtype=np.float64) * [self.x, self.y, self.x, self.y]

    def up(self, box: Iterable[float]) -> np.ndarray:
        """A box ``x, y, w, h`` in the working frame's pixels → in the video's."""
        return np.asarray(list(box), dtype=np.float64) / [self.x, self.y, self.x, self.y]


def working_scale(width: int, height: int, max_side: int) -> WorkingScale:
    """The scale that brings a ``width`` x ``height`` video's longer side down to ``max_side`` pixels, aspect kept;
    none (factors of 1) when the video is no larger than that already or ``max_side`` is 0."""
    longer = max(width, height)
    if max_side == 0 or longer <= max_side:
        return WorkingScale()
    new_width, new_height = max(1, round(width * max_side / longer)), max(1, round(height * max_side / longer))
    return WorkingScale((new_height, new_width), new_width / width, new_height / height)


def _parse_box(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (four numbers, 0-based pixels), got {text!r}")
    return values


def _parse_max_side(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of pixels (0: full resolution), got {text!r}")
    return value


def add_track_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``vidrnn track`` with the ``vidrnn`` command's sub-parsers."""
    parser = commands.add_parser(
        "track",
        help="follow a target through a video from its first-frame box",
        description="Track one target: give its box in the first frame, get a box for every frame (CSV: frame, x, "
        "y, w, h in 0-based pixels). Without --ckpt the untrained matching tracker follows it — the default, because "
        "on real validation sequences no trained head has beaten it yet (docs/results.md). A unidirectional "
        "checkpoint tracks online and streams; a bidirectional one "
        "reads the whole clip first (memory: about a hundred numbers per frame). Frames are decoded with their "
        f"longer side at most --max-side pixels (default {DEFAULT_MAX_SIDE}), so 4K and 8K videos need little "
        "memory; --box and the CSV stay in the video's own pixels. --render decodes the video again afterwards, at "
        "that working size, to draw the boxes.",
    )
    parser.add_argument("video", type=Path, help="a video file or a folder of frame images (sorted by name)")
    parser.add_argument("--box", type=_parse_box, required=True, help="the target in the first frame: x,y,w,h in pixels, 0-based (the ground-truth "
                        "files of OTB, LaSOT and GOT-10k are 1-based: subtract 1 from x and y); x and y may be "
                        "negative, for a box partly off the left or top edge (--box -5,10,40,40)")
    parser.add_argument("--ckpt", type=Path, default=None,
                        help="FrameTracker checkpoint from 'vidrnn fit' (default: none, the matching tracker)")
    parser.add_argument("--matching-only", action="store_true",
                        help="with --ckpt: keep the checkpoint's matching settings but ignore its learned head")
    parser.add_argument("--template-rate", type=float, default=None, metavar="RATE",
                        help="how fast the target's template follows its appearance, in [0, 1): after each frame "
                        "template = (1 - RATE) x template + RATE x the new box's appearance; 0 keeps the first "
                        "frame's (default: the checkpoint's, or 0.01). A trained head reads only evidence made "
                        "at its own rate: with one, another rate is refused (add --matching-only to try it)")
    parser.add_argument("--max-side", type=_parse_max_side, default=DEFAULT_MAX_SIDE, metavar="PIXELS",
                        help="decode frames with their longer side at most this many pixels (default: "
                        f"{DEFAULT_MAX_SIDE}; 0: full resolution). The tracker resizes a region around the target "
                        "to a fixed side (448 px by default) whatever the resolution, so more pixels mostly cost "
                        "memory (16 decoded 4K frames: 400 MB); a target only a few dozen pixels wide in a 4K video "
                        "keeps more detail with more")
    parser.add_argument("--output", type=Path, default=Path("boxes.csv"),
                        help="CSV of boxes (default: boxes.csv); an existing file is refused unless --overwrite")
    parser.add_argument("--render", type=Path, default=None,
                        help="also write this video (.mp4) with the box drawn, at the working size (--max-side); an "
                        "existing file is refused unless --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output (and --render): an earlier run's results are lost")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available (default)")
    parser.set_defaults(run=run_track, interrupted=lambda args: f"the boxes of the frames tracked so far are in "
                        f"{args.output}")


def _frames(video: Path, scale: WorkingScale) -> Iterator[np.ndarray]:
    """The video's frames at the working size, each as the file numbers it and at the first frame's size: a damaged
    stretch (which would renumber the frames after it) or a frame of another size (whose box would be written in the
    first frame's pixels) ends the stream with a :class:`~vidrnn.video.VideoReadError` naming it, after the frames
    before it (``frame_exact``)."""
    from vidrnn.video import iter_frames

    for _, chunk in iter_frames(video, size=scale.size, chunk_size=16, frame_exact=True):
        yield from chunk


def _render(video: Path, scale: WorkingScale, boxes: list[np.ndarray], path: Path, fps: float) -> None:
    """An mp4 copy of ``video`` at the working size with ``boxes`` (in its pixels) drawn, decoded a second time after
    tracking: memory holds the boxes and one chunk of frames, never the clip (a bidirectional head answers only at
    the end of it)."""
    import cv2

    from vidrnn.plots import draw_boxes

    writer = None
    try:
        for frame, box in zip(_frames(video, scale), boxes):
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f"{path}: OpenCV cannot write an mp4 video there")
            writer.write(cv2.cvtColor(draw_boxes(frame, [box]), cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()


def _check_box(box: list[float], width: int, height: int, scale: WorkingScale) -> None:
    """Refuse a first box outside the video, or one that the working size shrinks below what can be tracked."""
    from vidrnn.tracker.geometry import validate_box

    validate_box(box, (height, width))
    if scale.size is None:
        return
    try:
        validate_box(scale.down(box), scale.size)
    except ValueError as error:
        working_height, working_width = scale.size
        raise ValueError(f"scaled to the working size {working_width}x{working_height}: {error}; give a larger "
                         "--max-side (0: full resolution)") from error


def _same_path(one: Path, other: Path) -> bool:
    """Whether two paths, existing or not, name one place (a symbolic link or a ``.``/``..`` spelling included)."""
    return os.path.realpath(one) == os.path.realpath(other)


def _tracked_file(path: Path, video: Path) -> bool:
    """Whether ``path`` is a file the frames are read from: the video, or an image of a frames folder, whatever the
    spelling or link (a hard link included: the same file on disk)."""
    from vidrnn.video import image_files

    if not path.is_file():
        return False
    written = path.stat()
    return any(os.path.samestat(written, source.stat())
               for source in (image_files(video) if video.is_dir() else [video]))


def _check_outputs(video: Path, output: Path, render: Path | None, overwrite: bool) -> None:
    """Refuse outputs that cannot be written, and, without ``overwrite``, existing ones: opening the CSV truncates it,
    and an earlier run's boxes (by default in boxes.csv, wherever the command runs) would be lost without a word. Even
    with it, neither output may be the video tracked, nor both one file (the video would be written over the boxes)."""
    if render is not None and render.suffix.lower() != ".mp4":
        raise ValueError(f"--render writes mp4 video: give a .mp4 path, not {render.name}")
    if render is not None and _same_path(output, render):
        raise ValueError(f"--output and --render both name {render}: give each its own file")
    for option, path in (("--output", output), ("--render", render)):
        if path is None:
            continue
        if path.is_symlink() and not path.exists():
            raise ValueError(f"{option} {path} is a link to nothing it can write through (a loop, or a missing "
                             "folder): give a plain path")
        if _tracked_file(path, video):
            what = "one of the frames" if video.is_dir() else "the video"
            raise ValueError(f"{option} {path} is {what} being tracked: give another path")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"output folder {path.parent} does not exist")
        if path.is_dir():
            raise IsADirectoryError(f"{option} {path} is a folder: give a file's path inside it")
        if path.is_file() and Path("/dev") not in path.parents and not overwrite:  # /dev/stdout: a stream
            raise FileExistsError(f"{path} already exists: give another {option}, or --overwrite to replace it")


def _rows_kept(output: Path, count: int) -> str:
    """What a run stopped midway left in ``output``, after ``count`` boxes."""
    if count == 0:
        return f"{output} holds no box"
    return f"{output} holds the boxes of frames 0-{count - 1}"


def run_track(args: argparse.Namespace) -> int:
    """Track one target through one video and return the exit status; every argument is checked before the model
    loads or a frame is decoded, and the CSV is written as it goes, so an interrupted run keeps its rows."""
    from tqdm import tqdm

    from vidrnn.distributed import say_once, several_processes
    from vidrnn.tracker.runtime import load_tracker
    from vidrnn.video import VideoReadError, probe

    refusal = several_processes("track", "it would track the video in each and write the same boxes to the same "
                                "output from all of them")
    if refusal is not None:
        say_once(f"vidrnn track: error: {refusal}")
        return EXIT_USAGE
    try:
        info = probe(args.video)
        scale = working_scale(info.width, info.height, args.max_side)
        _check_box(args.box, info.width, info.height, scale)  # before the model loads or the output is opened
        _check_outputs(args.video, args.output, args.render, args.overwrite)
        tracker = load_tracker(args.ckpt, matching_only=args.matching_only, device=args.device,
                               template_rate=args.template_rate)
    except (ValueError, FileNotFoundError, OSError, VideoReadError) as error:
        print(f"vidrnn track: error: {error}", file=sys.stderr)
        return EXIT_USAGE

    boxes: list[np.ndarray] = []  # in the working frame's pixels, for --render
    try:
        with args.output.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["frame", "x", "y", "w", "h"])
            with tqdm(total=info.num_frames or None, unit="frame", desc="tracking", mininterval=1.0) as progress:
                for index, box in enumerate(tracker.track(_frames(args.video, scale), scale.down(args.box))):
                    writer.writerow([index, *(f"{value:.2f}" for value in scale.up(box))])
                    handle.flush()
                    boxes.append(box)
                    progress.update()
        if args.render is not None:
            _render(args.video, scale, boxes, args.render, info.fps)
    except (VideoReadError, ValueError, OSError) as error:
        if isinstance(error, BrokenPipeError) and stdout_reader_gone():
            raise  # --output /dev/stdout read by one who has gone: vidrnn.cli.main stops quietly
        print(f"vidrnn track: error: {error}; {_rows_kept(args.output, len(boxes))}", file=sys.stderr)
        return EXIT_FAILED
    said = sys.stderr if Path("/dev") in args.output.parents else sys.stdout  # the boxes may be on stdout themselves
    print(f"{len(boxes)} boxes written to {args.output}" + (f"; video with boxes: {args.render}" if args.render else ""),
          file=said)
    return EXIT_OK

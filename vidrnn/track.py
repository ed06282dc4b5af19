"""``vidrnn track``: follow one target through a video (or a folder of frames) from its box in the first frame.

Frames stream from the decoder in chunks and each box is written (and flushed) as soon as it is known, so memory
stays flat on long videos and an interrupted run keeps the rows it wrote. ``--render`` writes a copy of the video with
the box drawn. The checkpoint, the box and the output paths are checked before the first frame is decoded.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidrnn.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

__all__ = ["add_track_parser", "run_track"]


def _parse_box(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (four numbers, 0-based pixels), got {text!r}")
    return values


def add_track_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``vidrnn track`` with the ``vidrnn`` command's sub-parsers."""
    parser = commands.add_parser(
        "track",
        help="follow a target through a video from its first-frame box",
        description="Track one target: give its box in the first frame, get a box for every frame (CSV: frame, x, "
        "y, w, h in 0-based pixels). Without --ckpt the untrained matching tracker follows it — the default, because "
        "on real validation sequences no trained head has beaten it yet (docs/results.md). A unidirectional "
        "checkpoint tracks online and streams; a bidirectional one "
        "reads the whole clip first (memory: about a hundred numbers per frame). --render decodes the video again "
        "afterwards to draw the boxes.",
    )
    parser.add_argument("video", type=Path, help="a video file or a folder of frame images (sorted by name)")
    parser.add_argument("--box", type=_parse_box, required=True, help="the target in the first frame: x,y,w,h")
    parser.add_argument("--ckpt", type=Path, default=None,
                        help="FrameTracker checkpoint from 'vidrnn fit' (default: none, the matching tracker)")
    parser.add_argument("--matching-only", action="store_true",
                        help="with --ckpt: keep the checkpoint's matching settings but ignore its learned head")
    parser.add_argument("--template-rate", type=float, default=None, metavar="RATE",
                        help="how fast the target's template follows its appearance, in [0, 1): after each frame "
                        "template = (1 - RATE) x template + RATE x the new box's appearance; 0 keeps the first "
                        "frame's (default: the checkpoint's, or 0.01)")
    parser.add_argument("--output", type=Path, default=Path("boxes.csv"), help="CSV of boxes (default: boxes.csv)")
    parser.add_argument("--render", type=Path, default=None, help="also write this video (.mp4) with the box drawn")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available (default)")
    parser.set_defaults(run=run_track)


def _frames(video: Path) -> Iterator[np.ndarray]:
    from vidrnn.video import iter_frames

    for _, chunk in iter_frames(video, chunk_size=16):
        yield from chunk


def _render(video: Path, boxes: list[np.ndarray], path: Path, fps: float) -> None:
    """An mp4 copy of ``video`` with ``boxes`` drawn, decoded a second time after tracking: memory holds the boxes and
    one chunk of frames, never the clip (a bidirectional head answers only at the end of it)."""
    import cv2

    from vidrnn.plots import draw_boxes

    writer = None
    try:
        for frame, box in zip(_frames(video), boxes):
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f"{path}: OpenCV cannot write an mp4 video there")
            writer.write(cv2.cvtColor(draw_boxes(frame, [box]), cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()


def run_track(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vidrnn.tracker.geometry import validate_box
    from vidrnn.tracker.runtime import load_tracker
    from vidrnn.video import VideoReadError, probe

    try:
        info = probe(args.video)
        validate_box(args.box, (info.height, info.width))  # before the model loads or the output is opened
        for output in (args.output, args.render):
            if output is not None and not output.parent.is_dir():
                raise FileNotFoundError(f"output folder {output.parent} does not exist")
        if args.render is not None and args.render.suffix.lower() != ".mp4":
            raise ValueError(f"--render writes mp4 video: give a .mp4 path, not {args.render.name}")
        tracker = load_tracker(args.ckpt, matching_only=args.matching_only, device=args.device,
                               template_rate=args.template_rate)
    except (ValueError, FileNotFoundError, OSError, VideoReadError) as error:
        print(f"vidrnn track: error: {error}", file=sys.stderr)
        return EXIT_USAGE

    boxes: list[np.ndarray] = []
    try:
        with args.output.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["frame", "x", "y", "w", "h"])
            progress = tqdm(total=info.num_frames or None, unit="frame", desc="tracking", mininterval=1.0)
            for index, box in enumerate(tracker.track(_frames(args.video), args.box)):
                writer.writerow([index, *(f"{value:.2f}" for value in box)])
                handle.flush()
                boxes.append(box)
                progress.update()
            progress.close()
        if args.render is not None:
            _render(args.video, boxes, args.render, info.fps or 25.0)
    except (VideoReadError, ValueError) as error:
        print(f"vidrnn track: error after {len(boxes)} frames: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{len(boxes)} boxes written to {args.output}" + (f"; video with boxes: {args.render}" if args.render else ""))
    return EXIT_OK


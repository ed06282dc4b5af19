"""Tracking benchmark: vidrnn trackers against OpenCV's MIL and CSRT on every sequence of a folder, one metric code.

    python benchmarks/track_compare.py --ckpt lstm=runs/track_demo/.../best.ckpt [--ckpt none=OTHER.ckpt ...]
        [--root ../shared/data/tracking] [--markdown table.md]

Each ``--ckpt NAME=PATH`` adds a trained vidrnn tracker; the first one also gives the **matching-only ablation**
(same backbone and template matching, no head), so the table shows what the learned recurrent head adds, and the
same ablation with the first frame's template kept throughout (``template_rate`` 0), for what the template update
adds. Without ``--ckpt`` the ablations use the default settings. MIL is in
every OpenCV build; CSRT needs the contrib build (``pip install opencv-contrib-python-headless``, the ``bench`` extra),
and its column says so when it is missing. All trackers get the first frame's true box and nothing else; scores
come from :mod:`vidrnn.metrics` (first frame and absent-target frames excluded, means over sequences).
Speed (frames/s) is the tracker's own time on this machine, decoding excluded.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from vidrnn.data.tracking import TrackingSequence, find_sequences
from vidrnn.metrics import SequenceScore, mean_scores, score_sequence
from vidrnn.track import load_tracker

RunTracker = Callable[[TrackingSequence], tuple[np.ndarray, float]]


def _frames(sequence: TrackingSequence) -> Iterator[np.ndarray]:
    for _, chunk in sequence.iter_frames():
        yield from chunk


def _timed(frames: Iterator[np.ndarray], clock: list[float]) -> Iterator[np.ndarray]:
    """Pass frames on, adding the time spent decoding them to ``clock`` (so it can be subtracted)."""
    while True:
        start = time.perf_counter()
        frame = next(frames, None)
        clock[0] += time.perf_counter() - start
        if frame is None:
            return
        yield frame


def vidrnn_runner(tracker) -> RunTracker:
    def run(sequence: TrackingSequence) -> tuple[np.ndarray, float]:
        decoding = [0.0]
        start = time.perf_counter()
        boxes = np.array(list(tracker.track(_timed(_frames(sequence), decoding), sequence.boxes[0])))
        return boxes, len(boxes) / max(time.perf_counter() - start - decoding[0], 1e-9)

    return run


def opencv_runner(create: Callable[[], object]) -> RunTracker:
    def run(sequence: TrackingSequence) -> tuple[np.ndarray, float]:
        boxes, tracker, elapsed = [], None, 0.0
        for frame in _frames(sequence):
            image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            start = time.perf_counter()
            if tracker is None:
                tracker = create()
                tracker.init(image, tuple(int(round(value)) for value in sequence.boxes[0]))
                box = sequence.boxes[0].copy()
            else:
                found, estimate = tracker.update(image)
                box = np.array(estimate, dtype=float) if found else np.full(4, np.nan)  # lost: scores IoU 0
            elapsed += time.perf_counter() - start
            boxes.append(box)
        return np.array(boxes), len(boxes) / max(elapsed, 1e-9)

    return run


def _parse_checkpoint(text: str) -> tuple[str, Path]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=_parse_checkpoint, action="append", default=[],
                        help="NAME=PATH of a FrameTracker checkpoint (repeatable)")
    parser.add_argument("--root", type=Path, default=Path("../shared/data/tracking"),
                        help="folder of OTB/VOT/TLD sequences (default: ../shared/data/tracking)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables as markdown here")
    parser.add_argument("--no-opencv", action="store_true", help="run the vidrnn trackers only (skip MIL and CSRT)")
    args = parser.parse_args()

    trackers: dict[str, RunTracker] = {}
    for name, path in args.ckpt:
        trackers[f"vidrnn-{name}"] = vidrnn_runner(load_tracker(path, device="cpu"))
    # The ablations share the first checkpoint's settings (or the defaults): no head, then also no template update.
    first = args.ckpt[0][1] if args.ckpt else None
    trackers["matching-only"] = vidrnn_runner(load_tracker(first, matching_only=True, device="cpu"))
    trackers["matching-only, fixed template"] = vidrnn_runner(
        load_tracker(first, matching_only=True, device="cpu", template_rate=0.0))
    if not args.no_opencv:
        trackers["MIL"] = opencv_runner(cv2.TrackerMIL_create)
        csrt = getattr(cv2, "TrackerCSRT_create", None)
        if csrt is None:
            print("CSRT not available: it ships in the contrib build (pip install opencv-contrib-python-headless)",
                  file=sys.stderr)
        else:
            trackers["CSRT"] = opencv_runner(csrt)

    sequences = find_sequences(args.root)
    scores: dict[str, dict[str, SequenceScore]] = {name: {} for name in trackers}
    speeds: dict[str, list[float]] = {name: [] for name in trackers}
    for sequence in sequences:
        for name, run in trackers.items():
            boxes, fps = run(sequence)
            scores[name][sequence.name] = score_sequence(boxes, sequence.boxes)
            speeds[name].append(fps)
            print(f"{sequence.name:16s} {name:30s} AUC {scores[name][sequence.name].success_auc:.3f}  "
                  f"P@20 {scores[name][sequence.name].precision_20:.3f}  {fps:6.1f} fps", file=sys.stderr)

    names = list(trackers)
    lines = [
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, OpenCV {cv2.__version__}; "
        f"{len(sequences)} sequences from {args.root}",
        "",
        "Success AUC (mean IoU over OTB thresholds) per sequence; P@20 = precision at 20 px",
        "",
        "| sequence | frames | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for sequence in sequences:
        cells = [f"{scores[name][sequence.name].success_auc:.3f}" for name in names]
        lines.append(f"| {sequence.name} | {sequence.num_frames} | " + " | ".join(cells) + " |")
    means = {name: mean_scores(scores[name].values()) for name in names}
    lines.append("| **mean AUC** | | " + " | ".join(f"**{means[name].success_auc:.3f}**" for name in names) + " |")
    lines.append("| mean P@20 | | " + " | ".join(f"{means[name].precision_20:.3f}" for name in names) + " |")
    lines.append("| mean IoU | | " + " | ".join(f"{means[name].mean_iou:.3f}" for name in names) + " |")
    lines.append("| frames/s (median) | | " + " | ".join(f"{np.median(speeds[name]):.1f}" for name in names) + " |")
    table = "\n".join(lines)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from vidrnn.data.tracking_sequences import find_sequences
from vidrnn.tracker.evaluation import TrackFunction, evaluate
from vidrnn.tracker.runtime import load_tracker


def opencv_tracker(create: Callable[[], object]) -> TrackFunction:
    """An OpenCV tracker as a track function (a lost target is NaN: IoU 0)."""

    def track(frames: Iterator[np.ndarray], box: np.ndarray) -> Iterator[np.ndarray]:
        tracker = create()
        tracker.init(cv2.cvtColor(next(frames), cv2.COLOR_RGB2BGR), tuple(int(round(value)) for value in box))
        yield box
        for frame in frames:
            found, estimate = tracker.update(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            yield np.array(estimate, dtype=float) if found else np.full(4, np.nan)

    return track


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

    trackers: dict[str, TrackFunction] = {}
    for name, path in args.ckpt:
        trackers[f"vidrnn-{name}"] = load_tracker(path, device="cpu").track
    # The ablations share the first checkpoint's settings (or the defaults): no head, then also no template update.
    first = args.ckpt[0][1] if args.ckpt else None
    trackers["matching-only"] = load_tracker(first, matching_only=True, device="cpu").track
    trackers["matching-only, fixed template"] = load_tracker(first, matching_only=True, device="cpu",
                                                             template_rate=0.0).track
    if not args.no_opencv:
        trackers["MIL"] = opencv_tracker(cv2.TrackerMIL_create)
        csrt = getattr(cv2, "TrackerCSRT_create", None)
        if csrt is None:
            print("CSRT not available: it ships in the contrib build (pip install opencv-contrib-python-headless)",
                  file=sys.stderr)
        else:
            trackers["CSRT"] = opencv_tracker(csrt)

    sequences = find_sequences(args.root)
    rows = evaluate(trackers, sequences)
    scores = {(row.sequence, row.tracker): row for row in rows}
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
        cells = [f"{scores[sequence.name, name].score.success_auc:.3f}" for name in names]
        lines.append(f"| {sequence.name} | {sequence.num_frames} | " + " | ".join(cells) + " |")
    means = {name: scores["MEAN", name] for name in names}
    lines.append("| **mean AUC** | | " + " | ".join(f"**{means[n].score.success_auc:.3f}**" for n in names) + " |")
    lines.append("| mean P@20 | | " + " | ".join(f"{means[n].score.precision_20:.3f}" for n in names) + " |")
    lines.append("| mean IoU | | " + " | ".join(f"{means[n].score.mean_iou:.3f}" for n in names) + " |")
    lines.append("| frames/s (median) | | " + " | ".join(f"{means[n].frames_per_second:.1f}" for n in names) + " |")
    table = "\n".join(lines)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

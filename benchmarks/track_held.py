"""Where a tracker's memory can matter: IoU on the frames where the search was held, against all the others.

    python benchmarks/track_held.py --ckpt lstm=LSTM.ckpt --ckpt none=PER_FRAME.ckpt [--root data/demo_tracking/test]

A held search (the response's peak less than ``hold_below`` standard deviations above its mean: the target is
probably hidden) is where a single frame's evidence says nothing about the target, and where a recurrent head, which
saw the target move before, can still answer. Everywhere else the per-frame evidence already holds the answer. So
the mean IoU of every head is reported separately on held frames and on the rest, beside the matching-only box (on
held frames: the box the search waited at) and a constant-velocity guess (the held box moved on at the speed the
matching box had over the four frames before the hold) — what a hand-written motion model would do.

All heads read the evidence of one matching run per sequence (the first checkpoint's tracker: the same steering, so
the same held frames); their checkpoints must agree on the matching settings. Default root: the tracking demo's
generated test split. Real sequences are for evaluation only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from vidrnn.data.tracking_sequences import TrackingSequence, find_sequences
from vidrnn.tracker.geometry import validate_box, within_frame
from vidrnn.tracker.runtime import Tracker, load_tracker

#: Frames before a hold over which the constant-velocity guess measures the matching box's speed.
SPEED_FRAMES = 4


def _iou(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    def xyxy(b: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.c_[b[:, :2], b[:, :2] + b[:, 2:]])

    return box_iou(xyxy(boxes), xyxy(truth)).diagonal().numpy()


def constant_velocity(matching: np.ndarray, held: np.ndarray) -> np.ndarray:
    """``matching`` boxes ``[T,4]`` with each held stretch moved on at the speed of the frames before it."""
    guessed = matching.copy()
    for index in np.flatnonzero(held):
        start = index
        while held[start - 1]:
            start -= 1
        first = max(0, start - 1 - SPEED_FRAMES)
        speed = (matching[start - 1, :2] - matching[first, :2]) / max(1, start - 1 - first)
        guessed[index, :2] = matching[start - 1, :2] + speed * (index - start + 1)
    return guessed


@torch.no_grad()
def held_frame_boxes(trackers: dict[str, Tracker], sequence: TrackingSequence) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Whether each frame's search was held ``[T]`` (frame 0: no) and every tracker's boxes ``[T,4]``."""
    matching = next(iter(trackers.values()))
    frames = (frame for _, chunk in sequence.iter_frames() for frame in chunk)
    first = next(frames)
    box = validate_box(sequence.boxes[0], first.shape)
    steps = list(matching.search.steps(first, box, frames))
    held = np.r_[False, [step.held for step in steps]]
    boxes = {"matching-only": np.r_[box[None], [step.matching_box for step in steps]]}
    evidence = torch.stack([step.evidence for step in steps])[None]
    for name, tracker in trackers.items():
        crop_boxes = tracker.head(evidence)[0][0].cpu().numpy()
        boxes[name] = np.r_[box[None], [within_frame(step.window.box_from_crop(crop), step.frame_shape)
                                         for step, crop in zip(steps, crop_boxes)]]
    boxes["constant velocity"] = constant_velocity(boxes["matching-only"], held)
    return held, boxes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", action="append", required=True, metavar="NAME=PATH",
                        help="a FrameTracker checkpoint (repeatable; all must share the matching settings)")
    parser.add_argument("--root", default="data/demo_tracking/test", help="folder of OTB/VOT/TLD sequences")
    args = parser.parse_args(argv)
    if not Path(args.root).is_dir():
        parser.error(f"--root {args.root} is not a folder (the demo's test split appears after "
                     "`vidrnn fit --config configs/track_demo.yaml`)")
    trackers = {}
    for spec in args.ckpt:
        name, _, path = spec.partition("=")
        if not path:
            parser.error(f"--ckpt wants NAME=PATH, got {spec!r}")
        trackers[name] = load_tracker(path, device="cpu")
    settings = {name: tracker.settings for name, tracker in trackers.items()}
    if any(value != next(iter(settings.values())) for value in settings.values()):
        parser.error(f"the checkpoints track with different matching settings: {settings}")
    sequences = find_sequences(args.root)
    ious: dict[str, dict[bool, list[float]]] = {}
    held_count = total = 0
    for sequence in sequences:
        held, boxes = held_frame_boxes(trackers, sequence)
        visible = ~np.isnan(sequence.boxes).any(axis=1)
        visible[0] = False
        held_count, total = held_count + int((held & visible).sum()), total + int(visible.sum())
        for name, tracked in boxes.items():
            iou = _iou(tracked, np.nan_to_num(sequence.boxes))
            for is_held in (True, False):
                ious.setdefault(name, {True: [], False: []})[is_held].extend(iou[visible & (held == is_held)])
    print(f"{len(sequences)} sequences from {args.root}: the search was held on {held_count} of {total} scored frames")
    print(f"| tracker | mean IoU, held frames ({held_count}) | mean IoU, other frames ({total - held_count}) |")
    print("|---|---:|---:|")
    for name, values in ious.items():
        print(f"| {name} | " + " | ".join(f"{np.mean(values[h]):.3f}" if values[h] else "—" for h in (True, False))
              + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

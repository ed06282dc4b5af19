"""Where a recurrent head wins or loses against a per-frame head: mean IoU under the conditions memory should matter.

    python benchmarks/track_conditions.py --ckpt lstm=A.ckpt,B.ckpt,C.ckpt --ckpt none=D.ckpt,E.ckpt,F.ckpt \\
        [--val-of configs/track.yaml | --root DIR]

Frames are sorted into conditions read off the ground truth and the matching tracker's own evidence, then every
design's mean IoU is reported per condition (mean over its seeds, with the spread) over the frames of all sequences
**pooled**: a long sequence weighs more than a short one. ``track_compare.py``, ``vidrnn test`` and the success AUC
table below average per sequence instead (each sequence weighing the same); the row "all, mean over sequences" gives
that mean IoU beside the pooled one, so the two tables can be read together:

* **after absence** — the first ``AFTER_ABSENCE`` visible frames after the ground truth marked the target absent
  (occluded or out of view: NaN boxes): where a tracker must find the target again;
* **held** — the matching search was held (its peak too weak to trust): the target is probably hidden, and only a
  memory of its motion says where it went;
* **fast motion** — the target's centre moved more than ``FAST`` of its size since the previous frame;
* **look-alike** — a rival peak of the response stands at least ``LOOK_ALIKE`` of the best peak's height: something
  else in the search region looks like the target;
* **other** — none of these; and **all** frames.

A second table gives every design's success AUC (mean over sequences, each seed's value and the spread), the score
``track_compare.py`` reports, at the cost of one CNN pass per sequence however many heads are compared — without
the frames/s, which need each tracker run on its own.

Every head reads the evidence of one matching run per sequence (the first checkpoint's settings; they must agree):
the matching box steers every search, so a head's boxes there are exactly what it reports online. A checkpoint saved
with ``redetect_below`` > 0 is refused: its head's doubt widens the next search, so it steers, and its boxes are not
that one run's; ``track_compare.py`` tracks every checkpoint online and scores it as ``vidrnn track`` runs it.
Validation sequences by default (``--val-of configs/track.yaml``); never tune on the evaluation sequences.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from track_compare import validation_sequences
from vidrnn.data.tracking_sequences import TrackingSequence, find_sequences
from vidrnn.metrics import iou_per_frame, success_auc
from vidrnn.tracker.geometry import clamp_to_frame, validate_box
from vidrnn.tracker.matching import Evidence
from vidrnn.tracker.runtime import Tracker, load_tracker

#: Visible frames after an absence that count as "after absence".
AFTER_ABSENCE = 15
#: Centre displacement per frame, in units of the target's size (sqrt(w h)), above which motion counts as fast.
FAST = 0.2
#: A rival peak at least this fraction of the best peak's height (above the response's mean) is a look-alike.
LOOK_ALIKE = 0.8

CONDITIONS = ("after absence", "held", "fast motion", "look-alike", "other", "all")


def conditions(truth: np.ndarray, held: np.ndarray, evidence: torch.Tensor) -> dict[str, np.ndarray]:
    """Boolean masks ``[N]`` per condition over the frames that count (visible, not the given first frame);
    ``held [N]`` and ``evidence [N-1, EVIDENCE_DIM]`` come from the matching run (frames 1..N-1)."""
    visible = ~np.isnan(truth).any(axis=1)
    counted = visible.copy()
    counted[0] = False
    after = np.zeros(len(truth), dtype=bool)
    last_absent = -AFTER_ABSENCE - 1
    for index, seen in enumerate(visible):
        if not seen:
            last_absent = index
        after[index] = seen and index - last_absent <= AFTER_ABSENCE
    centres = truth[:, :2] + truth[:, 2:] / 2
    motion = np.zeros(len(truth))
    motion[1:] = np.linalg.norm(np.diff(centres, axis=0), axis=1) / np.sqrt(truth[1:, 2] * truth[1:, 3])
    fast = np.nan_to_num(motion) > FAST
    heights = Evidence(evidence).heights(Evidence(evidence).peaks[..., 2]).numpy()
    look_alike = np.r_[False, heights[:, 1:].max(axis=1) >= LOOK_ALIKE * heights[:, 0]]
    masks = {"after absence": after, "held": held, "fast motion": fast, "look-alike": look_alike}
    masks["other"] = ~np.any(list(masks.values()), axis=0)
    masks["all"] = np.ones(len(truth), dtype=bool)
    return {name: mask & counted for name, mask in masks.items()}


def require_one_pass(trackers: dict[str, Tracker]) -> None:
    """Refuse trackers whose head steers its own searches (``redetect_below`` > 0): one matching run cannot stand
    for them, so the boxes scored here would not be the boxes ``vidrnn track`` gives."""
    steering = [name for name, tracker in trackers.items() if tracker.redetect_below > 0]
    if steering:
        raise ValueError(f"{', '.join(steering)}: saved with redetect_below > 0, so the head's doubt widens the next "
                         "search and the tracker does not follow one matching run; score it with "
                         "benchmarks/track_compare.py, which tracks every checkpoint online")


@torch.no_grad()
def head_ious(trackers: dict[str, Tracker], sequence: TrackingSequence) -> tuple[dict[str, np.ndarray],
                                                                                 dict[str, np.ndarray]]:
    """The condition masks of ``sequence`` and every tracker's IoU per frame (plus the matching-only tracker's)."""
    require_one_pass(trackers)
    matching = next(iter(trackers.values()))
    frames = (frame for _, chunk in sequence.iter_frames() for frame in chunk)
    first = next(frames)
    box = validate_box(sequence.boxes[0], first.shape)
    steps = list(matching.search.steps(first, box, frames))
    evidence = torch.stack([step.evidence for step in steps])
    windows = [step.window for step in steps]
    boxes = {"matching-only": np.r_[box[None], [step.matching_box for step in steps]]}
    for name, tracker in trackers.items():
        crop_boxes = tracker.head(evidence[None])[0][0].cpu().numpy()
        boxes[name] = np.r_[box[None], [clamp_to_frame(window.box_from_crop(crop), first.shape)
                                        for window, crop in zip(windows, crop_boxes)]]
    held = np.r_[False, [step.held for step in steps]]
    ious = {name: iou_per_frame(tracked, sequence.boxes) for name, tracked in boxes.items()}
    return conditions(sequence.boxes, held, evidence), ious


def _row(label: str, count: str, means: dict[str, float] | None, designs: dict[str, list[str]]) -> str:
    """One row of the condition table: matching-only's mean IoU, then every design's mean over its seeds with their
    spread (``means``: by run; ``None`` where nothing counted)."""
    if means is None:
        return f"| {label} | {count} | — | " + " | ".join("—" for _ in designs) + " |"
    cells = [f"{means['matching-only']:.3f}"]
    for runs in designs.values():
        values = [means[run] for run in runs]
        cells.append(f"{np.mean(values):.3f} ({max(values) - min(values):.3f})")
    return f"| {label} | {count} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", action="append", required=True, metavar="NAME=PATH[,PATH...]",
                        help="FrameTracker checkpoints of one design, one per seed (repeatable)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--val-of", type=Path, default=Path("configs/track.yaml"), metavar="CONFIG",
                       help="score the validation sequences of this tracking config (default: configs/track.yaml)")
    where.add_argument("--root", type=Path, default=None, help="score every sequence in this folder instead")
    args = parser.parse_args(argv)

    designs: dict[str, list[str]] = {}
    trackers: dict[str, Tracker] = {}
    for spec in args.ckpt:
        name, _, paths = spec.partition("=")
        if not paths:
            parser.error(f"--ckpt wants NAME=PATH[,PATH...], got {spec!r}")
        designs[name] = [f"{name} #{seed}" for seed, _ in enumerate(paths.split(","))]
        for run, path in zip(designs[name], paths.split(",")):
            trackers[run] = load_tracker(path, device="cpu")
    try:
        require_one_pass(trackers)
    except ValueError as error:
        parser.error(str(error))
    settings = [tracker.settings for tracker in trackers.values()]
    if any(value != settings[0] for value in settings):
        parser.error(f"the checkpoints track with different matching settings: {settings}")
    sequences = find_sequences(args.root) if args.root else validation_sequences(args.val_of)

    masks: dict[str, list[np.ndarray]] = {name: [] for name in CONDITIONS}
    ious: dict[str, list[np.ndarray]] = {}
    aucs: dict[str, list[float]] = {}
    for sequence in sequences:
        sequence_masks, sequence_ious = head_ious(trackers, sequence)
        for name in CONDITIONS:
            masks[name].append(sequence_masks[name])
        for run, values in sequence_ious.items():
            ious.setdefault(run, []).append(values)
            aucs.setdefault(run, []).append(success_auc(values[sequence_masks["all"]]))
    mask = {name: np.concatenate(values) for name, values in masks.items()}
    iou = {run: np.concatenate(values) for run, values in ious.items()}

    print(f"{len(sequences)} sequences, {torch.get_num_threads()} torch threads; mean IoU per condition over the "
          "frames of all sequences pooled (mean over seeds, spread in brackets)")
    print("| condition | frames, pooled over sequences | matching-only | " + " | ".join(designs) + " |")
    print("|---|---:|---:|" + "---:|" * len(designs))
    for name in CONDITIONS:
        frames = int(mask[name].sum())
        pooled = {run: values[mask[name]].mean() for run, values in iou.items()} if frames else None
        print(_row(name, str(frames), pooled, designs))
    scored = [index for index, values in enumerate(masks["all"]) if values.any()]
    per_sequence = {run: np.mean([values[index][masks["all"][index]].mean() for index in scored])
                    for run, values in ious.items()} if scored else None
    print(_row("all, mean over sequences (each weighing the same)", f"{len(scored)} sequences", per_sequence,
               designs))

    print("\nSuccess AUC, mean over sequences")
    print("| design | mean | per seed | spread |\n|---|---:|---|---:|")
    print(f"| matching-only | {np.mean(aucs['matching-only']):.3f} | — | — |")
    for name, runs in designs.items():
        values = [np.mean(aucs[run]) for run in runs]
        print(f"| {name} | {np.mean(values):.3f} | " + " / ".join(f"{value:.3f}" for value in values)
              + f" | {max(values) - min(values):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

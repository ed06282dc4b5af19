"""Tracking benchmark: vidrnn trackers against OpenCV's MIL and CSRT on whole sequences, one metric code.

    python benchmarks/track_compare.py --ckpt lstm=SEED0.ckpt,SEED1.ckpt,SEED2.ckpt --ckpt none=... \\
        [--root ../shared/data/tracking | --val-of configs/track.yaml] [--markdown table.md] [--no-opencv] \\
        [--noise-floor K]

Each ``--ckpt NAME=PATH[,PATH...]`` adds a trained vidrnn tracker; several paths are training seeds of one design, and
its row shows their mean with every seed's value and the spread (max - min): a difference between two designs
inside that spread is no difference. The first checkpoint also gives the **matching-only ablation** (the same
backbone, template matching and rule, no head), so the table shows what the learned head adds. MIL is in every
OpenCV build; CSRT needs the contrib build (``pip install opencv-contrib-python-headless``, the ``bench`` extra).

``--noise-floor K`` measures how large a difference must be to mean anything: the matching-only tracker runs K more
times with its first box moved by a hundredth of a pixel or less in x and y (drawn from a fixed seed, so every run
of the benchmark moves it alike). The tracker is deterministic, but a closed loop of searches turns differences that
small — or the float rounding of another torch thread count — into different boxes some frames later, and on a
sequence with a look-alike into another target. The row "matching-only, first box ±0.01 px (noise floor)" gives the
spread (max - min) of the mean success AUC over those K + 1 runs, and the per-sequence table a column with each
sequence's spread: differences between designs within it are noise, whatever the seeds say. The header names the
torch thread count, which moves the float rounding too.

Sequences: every sequence under ``--root`` (default: the evaluation sequences, ``../shared/data/tracking``), or with
``--val-of CONFIG`` the validation sequences a tracking config holds out (``data.val_sequences`` under
``data.root``) — where designs are compared and settings chosen. All trackers get the first frame's true box and
nothing else; scores come from :mod:`vidrnn.tracker.evaluation`: OTB-style success AUC (first and absent-target
frames excluded, a lost target scoring 0 — not OTB's toolkit, see :mod:`vidrnn.metrics`), means over sequences.
Speed (frames/s) is each tracker's own time on this machine, decoding excluded, median over sequences; run the
benchmark alone on the machine for speeds that mean anything. Last, each design against matching-only and CSRT:
the difference of mean success AUC with a 95 % interval from a paired bootstrap over the sequences the means score
(the helper of ``classify_variants.py``; the table says how many were left out), and on how many sequences it is
ahead — a gap between means of a few sequences is level while that interval holds 0.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from classify_variants import RESAMPLES, clustered_difference
from vidrnn.data.tracking_datamodule import TrackingDataModule
from vidrnn.data.tracking_sequences import TrackingSequence, find_sequences
from vidrnn.tracker.evaluation import ScoreRow, TrackFunction, evaluate, opencv_tracker
from vidrnn.tracker.runtime import Tracker, load_tracker


#: The noise floor's row: matching-only runs whose first box moved by at most NOISE_SHIFT pixels in x and y.
NOISE_FLOOR = "matching-only, first box ±0.01 px (noise floor)"
#: Largest move of the first box, in pixels, for the noise floor's runs.
NOISE_SHIFT = 0.01
#: Seed of the noise floor's moves: every run of the benchmark moves the box alike.
NOISE_SEED = 0


def _first_box_moved(track: TrackFunction, shift: np.ndarray) -> TrackFunction:
    """``track`` given a first box moved by ``shift`` (x, y pixels); its size is kept."""

    def moved(frames: Iterator[np.ndarray], box: np.ndarray) -> Iterator[np.ndarray]:
        return iter(track(frames, box + np.r_[shift, 0.0, 0.0]))

    return moved


def noise_floor_runs(track: TrackFunction, count: int) -> dict[str, TrackFunction]:
    """``count`` runs of ``track`` whose first box moved by at most :data:`NOISE_SHIFT` pixels in x and y, drawn from
    :data:`NOISE_SEED`; named by their move."""
    shifts = np.random.default_rng(NOISE_SEED).uniform(-NOISE_SHIFT, NOISE_SHIFT, (count, 2))
    return {f"matching-only, first box {x:+.4f}, {y:+.4f} px": _first_box_moved(track, np.array([x, y]))
            for x, y in shifts}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of runs, 1 or more; got {text!r}")
    return value


def _parse_checkpoints(text: str) -> tuple[str, list[Path]]:
    name, separator, paths = text.partition("=")
    if not separator or not name or not paths:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH[,PATH...], got {text!r}")
    return name, [Path(path) for path in paths.split(",")]


def validation_sequences(config: Path) -> tuple[list[TrackingSequence], Path]:
    """The sequences a tracking config validates on, split exactly as its data module splits them (``data.root``'s
    ``val/``, or ``data.val_sequences``: folders or single targets, at any depth, none of the test side), and the
    data root the tables name them under."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))["data"]
    where = {name: data[name] for name in ("root", "val_sequences", "test_root", "demo_dir") if name in data}
    module = TrackingDataModule(**where)
    return module.sequences("val"), module.data_root


def _summary(name: str, rows: list[ScoreRow]) -> str:
    """One table row: mean over seeds of each metric, every seed's AUC and their spread."""
    aucs = [row.score.success_auc for row in rows]
    seeds = " / ".join(f"{auc:.3f}" for auc in aucs) if len(rows) > 1 else "—"
    spread = f"{max(aucs) - min(aucs):.3f}" if len(rows) > 1 else "—"
    return (f"| {name} | {len(rows)} | **{np.mean(aucs):.3f}** | {seeds} | {spread} | "
            f"{np.mean([row.score.precision_20 for row in rows]):.3f} | "
            f"{np.mean([row.score.mean_iou for row in rows]):.3f} | "
            f"{np.median([row.frames_per_second for row in rows]):.1f} |")


def _per_sequence_table(sequences: list[TrackingSequence], root: Path, designs: dict[str, list[str]],
                        scores: dict[tuple[str, str], ScoreRow]) -> list[str]:
    """Success AUC per sequence (named by its path under ``root``, as the rows are), mean over each design's seeds;
    with a noise floor, a last column of its spread."""
    columns = {name: runs for name, runs in designs.items() if name != NOISE_FLOOR}
    floor = designs.get(NOISE_FLOOR)
    lines = ["", "Success AUC per sequence (mean over seeds)", "",
             "| sequence | frames | " + " | ".join(columns) + (" | noise floor: spread |" if floor else " |"),
             "|---|---:|" + "---:|" * (len(columns) + bool(floor))]
    for sequence in sequences:
        name = sequence.name_under(root)
        cells = [f"{np.mean([scores[name, run].score.success_auc for run in runs]):.3f}" for runs in columns.values()]
        if floor:
            aucs = [scores[name, run].score.success_auc for run in floor]
            cells.append(f"{max(aucs) - min(aucs):.3f}")
        lines.append(f"| {name} | {sequence.num_frames} | " + " | ".join(cells) + " |")
    return lines


def scored_sequences(names: list[str], designs: dict[str, list[str]],
                     scores: dict[tuple[str, str], ScoreRow]) -> list[str]:
    """The sequences of ``names`` every run of ``designs`` has a score on: those the means average (a sequence
    without a frame to score, the target absent after the first, has NaN scores and stays out of them)."""
    return [name for name in names if all(scores[name, run].score.scored for runs in designs.values() for run in runs)]


def paired_intervals(names: list[str], designs: dict[str, list[str]], scores: dict[tuple[str, str], ScoreRow],
                     against: tuple[str, ...] = ("matching-only", "CSRT")) -> list[str]:
    """Each design's mean success AUC minus that of matching-only and of CSRT (those present), paired over the
    sequences of ``names`` the means score (:func:`scored_sequences`) with a 95 % bootstrap interval over them
    (``clustered_difference``, a sequence a unit; seeds averaged per sequence first) and how many sequences it is
    ahead on: a gap in the means of a few sequences is a finding only where the interval excludes 0."""
    baselines = [name for name in against if name in designs]
    if not baselines:
        return []
    scored = scored_sequences(names, designs, scores)
    if not scored:
        return [f"No paired intervals: none of the {len(names)} sequences has a frame to score (the target absent "
                "after the first)"]

    def per_sequence(design: str) -> np.ndarray:
        return np.array([np.mean([scores[name, run].score.success_auc for run in designs[design]]) for name in scored])

    def cell(design: str, baseline: str) -> str:
        if design == baseline:
            return "—"
        values, reference = per_sequence(design), per_sequence(baseline)
        point, low, high = clustered_difference(values, reference, scored)
        return f"{point:+.3f} [{low:+.3f}, {high:+.3f}], ahead on {int((values > reference).sum())} of {len(scored)}"

    left_out = len(names) - len(scored)
    lines = [f"Success AUC minus another tracker's, paired over sequences: 95 % percentile interval from {RESAMPLES} "
             f"bootstrap resamples of the {len(scored)} sequences with a frame to score"
             + (f" ({left_out} without one left out, as in the means)" if left_out else "")
             + " (seeds averaged per sequence first); a gap whose interval holds 0 is level", "",
             "| design | " + " | ".join(f"vs {baseline}" for baseline in baselines) + " |",
             "|---|" + "---:|" * len(baselines)]
    return lines + [f"| {design} | " + " | ".join(cell(design, baseline) for baseline in baselines) + " |"
                    for design in designs if design not in ("CSRT", NOISE_FLOOR)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=_parse_checkpoints, action="append", default=[],
                        help="NAME=PATH[,PATH...]: FrameTracker checkpoints of one design, one per training seed "
                        "(repeatable)")
    sequences = parser.add_mutually_exclusive_group()
    sequences.add_argument("--root", type=Path, default=Path("../shared/data/tracking"),
                           help="folder of OTB/VOT/TLD sequences (default: ../shared/data/tracking)")
    sequences.add_argument("--val-of", type=Path, default=None, metavar="CONFIG",
                           help="the validation sequences of this tracking config instead")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables as markdown here")
    parser.add_argument("--matching", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE...]",
                        help="add a matching-only row with other tracker settings, e.g. "
                        "'redetect:redetect_after=5,redetect_widen=3' (repeatable; choose them on validation sequences)")
    parser.add_argument("--redetect-below", type=float, default=None, metavar="P",
                        help="track every checkpoint with this re-detection threshold (heads trained with confidence; "
                        "default: each checkpoint's own)")
    parser.add_argument("--no-opencv", action="store_true", help="run the vidrnn trackers only (skip MIL and CSRT)")
    parser.add_argument("--noise-floor", type=_positive, default=None, metavar="K",
                        help="also run the matching-only tracker K more times, its first box moved by at most "
                        f"{NOISE_SHIFT} px in x and y (seeded), and report the spread of success AUC: the smallest "
                        "difference that means anything")
    args = parser.parse_args(argv)

    sequences, root = validation_sequences(args.val_of) if args.val_of else (find_sequences(args.root), args.root)
    trackers: dict[str, TrackFunction] = {}
    designs: dict[str, list[str]] = {}
    for name, paths in args.ckpt:
        designs[f"vidrnn {name}"] = []
        for seed, path in enumerate(paths):
            run = f"vidrnn {name} #{seed}"
            trackers[run] = load_tracker(path, device="cpu", redetect_below=args.redetect_below).track
            designs[f"vidrnn {name}"].append(run)
    # The ablation shares the first checkpoint's settings (or the defaults): the same matching, no head.
    first = args.ckpt[0][1][0] if args.ckpt else None
    matching = load_tracker(first, matching_only=True, device="cpu")
    trackers["matching-only"] = matching.track
    for spec in args.matching:
        name, _, assignments = spec.partition(":")
        changes = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in assignments.split(","))}
        trackers[f"matching-only {name}"] = Tracker.build(replace(matching.settings, **changes), device="cpu").track
    if not args.no_opencv:
        trackers["MIL"] = opencv_tracker(cv2.TrackerMIL_create)
        csrt = getattr(cv2, "TrackerCSRT_create", None)
        if csrt is None:
            print("CSRT not available: it ships in the contrib build (pip install opencv-contrib-python-headless)",
                  file=sys.stderr)
        else:
            trackers["CSRT"] = opencv_tracker(csrt)
    designs.update({name: [name] for name in trackers if not name.startswith("vidrnn ")})
    if args.noise_floor:
        moved = noise_floor_runs(matching.track, args.noise_floor)
        trackers.update(moved)
        designs[NOISE_FLOOR] = ["matching-only", *moved]

    rows = evaluate(trackers, sequences, root=root)
    scores = {(row.sequence, row.tracker): row for row in rows}
    where = f"the validation sequences of {args.val_of}" if args.val_of else str(args.root)
    lines = [
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, OpenCV {cv2.__version__}; "
        f"{len(sequences)} sequences from {where}",
        "",
        "| tracker | seeds | mean success AUC | per seed | spread | P@20 | mean IoU | frames/s |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    lines += [_summary(design, [scores["MEAN", run] for run in runs]) for design, runs in designs.items()]
    lines += _per_sequence_table(sequences, root, designs, scores)
    lines += ["", *paired_intervals([sequence.name_under(root) for sequence in sequences], designs, scores)]
    table = "\n".join(lines)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

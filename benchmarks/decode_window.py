"""How busy the decoding processes can be, given the order answers are handed out in: a simulation.

:func:`vidrnn.workers.isolated_map` hands answers out in input order, and gives a worker a position only while it lies
within a window past the next answer out. Decoding time follows a video's length (FFmpeg decodes every frame to reach
the sampled ones), and clip lengths vary several-fold in UCF101: while one long video holds the next answer, the other
workers finish the rest of the window and then wait. How long they wait depends on the window, the number of workers
and the lengths — on a 2-core machine hardly at all, on a 16-core GPU machine a good part of the time.

This replays the pool's dispatch rule (each worker takes positions in order while it has fewer than ``prefetch``
queued and the position is within the window; it works on them one at a time; the next answer out advances as soon as
it is there) with an instant consumer, on decoding times from a linear model of frame count fitted to this machine's
own decoding of a sample of the dataset's clips. It prints the share of time the workers are busy for each window (in
multiples of ``workers x prefetch``, the pool's queue places). A model, not a measurement: it leaves out scheduling,
the main process and the disk. ``--measure ROUNDS`` then measures: the decode ceiling of ``benchmarks/extract.py``
(the real decoding processes, nothing sent back) over ``--clips`` clips with each given ``--workers`` count, with
the window at 1x and at 2x in alternating rounds, and the ratio of each round's pair.

    python benchmarks/decode_window.py [--root ../shared/data/ucf101-mini] [--clips 1000] [--workers 2 16]
                                       [--measure 3]
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

import vidrnn.workers
from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.embedding import VideoItem
from vidrnn.sampling import SamplingSpec
from vidrnn.video import probe, read_sampled

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import decode_ceiling, spread  # noqa: E402  (the extraction benchmark's measurement)

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucf101-mini"


def run_time(seconds: np.ndarray, workers: int, prefetch: int, window: int, consume: float = 0.0,
             dispatch_on_hand_out: bool = True) -> float:
    """Seconds until the main process has handed out and worked through every answer, for per-video decoding
    ``seconds`` in input order and ``consume`` seconds of the main process's own work per answer (0: instant).

    The pool's rules: a worker has at most ``prefetch`` positions that the main process has not received back; it
    takes positions in order, only below the next answer out plus ``window``; the main process receives answers (and
    hands out positions) whenever it waits for the next one, and — ``dispatch_on_hand_out``, as now — also each time
    it hands one out."""
    queue = deque(range(len(seconds)))
    sent: list[deque[int]] = [deque() for _ in range(workers)]  # per worker: not done yet, the first in progress
    done: list[list[int]] = [[] for _ in range(workers)]  # per worker: done, not received yet
    finishing: list[tuple[float, int]] = []  # (when its video is done, worker)
    received: set[int] = set()
    now = 0.0

    def dispatch(next_out: int) -> None:
        for worker in range(workers):
            while (len(sent[worker]) + len(done[worker]) < prefetch and queue
                   and queue[0] < next_out + window):
                sent[worker].append(queue.popleft())
                if len(sent[worker]) == 1:
                    heapq.heappush(finishing, (now + seconds[sent[worker][0]], worker))

    def advance(until: float) -> None:
        nonlocal now
        while finishing and finishing[0][0] <= until:
            when, worker = heapq.heappop(finishing)
            done[worker].append(sent[worker].popleft())
            if sent[worker]:
                heapq.heappush(finishing, (when + seconds[sent[worker][0]], worker))
        now = until

    def receive() -> None:
        for answers in done:
            received.update(answers)
            answers.clear()

    for next_out in range(len(seconds)):
        while next_out not in received:
            dispatch(next_out)
            if not any(done):
                advance(finishing[0][0])  # wait for the next answer
            receive()
        received.remove(next_out)
        if dispatch_on_hand_out:
            receive()
            dispatch(next_out + 1)
        advance(now + consume)
    return now


def _window_now() -> int:
    return vidrnn.workers._WINDOW


def busy_share(seconds: np.ndarray, workers: int, prefetch: int, window: int) -> float:
    """The share of the run's time that ``workers`` decoders spend decoding when the main process costs nothing."""
    return float(seconds.sum() / workers / run_time(seconds, workers, prefetch, window))


def decoding_model(paths: list[Path], sampling: SamplingSpec) -> tuple[float, float]:
    """Seconds to decode a video as ``fixed + per_frame * frames``, fitted to timed reads of ``paths`` here."""
    frames, seconds = [], []
    for path in paths:
        start = time.perf_counter()
        read_sampled(path, lambda info: sampling.indices(info.num_frames, info.fps), size=sampling.short_side)
        seconds.append(time.perf_counter() - start)
        frames.append(probe(path).num_frames)
    per_frame, fixed = np.polyfit(frames, seconds, 1)
    return max(fixed, 0.0), per_frame


def measure(items: list[VideoItem], sampling: SamplingSpec, workers: int, rounds: int) -> None:
    """Print the decode ceiling with the window at 1x and 2x the queue places, alternating, and each pair's ratio."""
    preprocess = build_backbone(BackboneSpec(name="efficientnet_lite0")).preprocess
    default, ratios = vidrnn.workers._WINDOW, []
    try:
        for round_ in range(rounds):
            rates = {}
            for window in (1, 2) if round_ % 2 == 0 else (2, 1):
                vidrnn.workers._WINDOW = window  # read by each pool as it starts
                rates[window] = decode_ceiling(items, sampling, preprocess, workers)
            ratios.append(rates[2] / rates[1])
            print(f"{workers} workers, round {round_ + 1}: window x1 {rates[1]:,.0f} f/s, x2 {rates[2]:,.0f} f/s, "
                  f"ratio {ratios[-1]:.3f}", flush=True)
    finally:
        vidrnn.workers._WINDOW = default
    print(f"{workers} workers: median ratio x2 / x1 {statistics.median(ratios):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="UCF101 (or a subset) with split lists")
    parser.add_argument("--clips", type=int, default=1000, help="videos in the simulated run (default: 1000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--prefetch", type=int, default=4, help="queue places per worker (default: 4, as extraction)")
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--timed", type=int, default=48, help="clips decoded here to fit the time model (default: 48)")
    parser.add_argument("--measure", type=int, default=0, metavar="ROUNDS",
                        help="then measure the decode ceiling at both windows, alternating (default: 0, no)")
    args = parser.parse_args()

    items = ucf101_index(args.root, fold=1).video_items()
    frames = np.array([probe(item.path).num_frames for item in items], dtype=float)
    sampling = SamplingSpec(strategy="segments", num_segments=args.segments, short_side=256)
    timed = [item.path for item in items[:: max(1, len(items) // args.timed)][: args.timed]]
    fixed, per_frame = decoding_model(timed, sampling)
    print(f"{len(items)} clips, {frames.min():.0f}-{frames.max():.0f} frames (median {np.median(frames):.0f}); "
          f"decoding modelled as {1000 * fixed:.1f} ms + {1000 * per_frame:.3f} ms a frame (fitted to {len(timed)} clips)")
    orders = {
        "dataset order": np.resize(frames, args.clips),
        "shuffled": np.random.default_rng(0).permutation(np.resize(frames, args.clips)),
    }
    multiples = (1, 2, 3, 4)
    print(f"{'order':>14} {'workers':>8} " + " ".join(f"{f'window x{m}':>10}" for m in multiples))
    for name, lengths in orders.items():
        seconds = fixed + per_frame * lengths
        for workers in args.workers:
            shares = [busy_share(seconds, workers, args.prefetch, m * workers * args.prefetch) for m in multiples]
            print(f"{name:>14} {workers:>8} " + " ".join(f"{share:>10.3f}" for share in shares))
    # A main process with work of its own per answer (the CNN's batches, the classifier), as a share of the decoders'
    # time per video: the run can still go at the decoders' speed, if they are kept busy while it works.
    loads = (0.0, 0.5, 0.8, 0.95)
    rules = {"before": (1, False), "now": (_window_now(), True)}
    print(f"\nshare of the decoders' time spent decoding, main process busy this share of the decoders' time a video:")
    print(f"{'order':>14} {'workers':>8} {'rule':>7} " + " ".join(f"{f'load {load:g}':>9}" for load in loads))
    for name, lengths in orders.items():
        seconds = fixed + per_frame * lengths
        for workers in args.workers:
            for rule, (multiple, on_hand_out) in rules.items():
                shares = [seconds.sum() / workers / run_time(seconds, workers, args.prefetch,
                                                             multiple * workers * args.prefetch,
                                                             load * seconds.mean() / workers, on_hand_out)
                          for load in loads]
                print(f"{name:>14} {workers:>8} {rule:>7} " + " ".join(f"{share:>9.3f}" for share in shares))
    for workers in args.workers if args.measure else ():
        measure(spread(items, args.clips), sampling, workers, args.measure)


if __name__ == "__main__":
    main()

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
the main process and the disk; ``benchmarks/extract.py`` measures.

    python benchmarks/decode_window.py [--root ../shared/data/ucf101-mini] [--clips 1000] [--workers 2 16]
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections import deque
from pathlib import Path

import numpy as np

from vidrnn.data.ucf101 import ucf101_index
from vidrnn.sampling import SamplingSpec
from vidrnn.video import probe, read_sampled

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucf101-mini"


def busy_share(seconds: np.ndarray, workers: int, prefetch: int, window: int) -> float:
    """The share of the run's time that ``workers`` decoders spend decoding, for per-video ``seconds`` in input order."""
    queue, queued = deque(range(len(seconds))), [deque() for _ in range(workers)]
    finishing: list[tuple[float, int]] = []  # (time its current video is done, worker)
    answered, next_out, now = set(), 0, 0.0

    def dispatch() -> None:
        for worker, places in enumerate(queued):
            while len(places) < prefetch and queue and queue[0] < next_out + window:
                places.append(queue.popleft())
                if len(places) == 1:
                    heapq.heappush(finishing, (now + seconds[places[0]], worker))

    dispatch()
    while finishing:
        now, worker = heapq.heappop(finishing)
        answered.add(queued[worker].popleft())
        if queued[worker]:
            heapq.heappush(finishing, (now + seconds[queued[worker][0]], worker))
        while next_out in answered:
            next_out += 1
        dispatch()
    return float(seconds.sum() / workers / now)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="UCF101 (or a subset) with split lists")
    parser.add_argument("--clips", type=int, default=1000, help="videos in the simulated run (default: 1000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--prefetch", type=int, default=4, help="queue places per worker (default: 4, as extraction)")
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--timed", type=int, default=48, help="clips decoded here to fit the time model (default: 48)")
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


if __name__ == "__main__":
    main()

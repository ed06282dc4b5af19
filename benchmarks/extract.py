"""Feature extraction throughput: the CNN alone versus the whole pipeline (decode + preprocess + CNN + write).

Both are measured in one run, on the same device, backbone, batch size and frames. The CNN-only figure is the
upper bound: the same preprocessed frames, already in memory, pushed through the frozen backbone in batches of the
same fixed size. End-to-end runs ``extract_features`` into a fresh cache, with decoding in worker processes.

    python benchmarks/extract.py [--videos 48] [--rounds 3] [--batch-size 32] [--workers 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.features import FeatureCache, extract_features
from vidrnn.sampling import SamplingSpec
from vidrnn.video import read_sampled

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucf101-mini"


def cnn_only(backbone, frames: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """Frames per second of the backbone alone over ``frames`` (preprocessed, in memory), fixed-size batches."""
    backbone(frames[:batch_size].to(device))  # warm-up: first-call allocations and kernel selection
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for first in range(0, len(frames), batch_size):
        batch = frames[first : first + batch_size]
        if len(batch) < batch_size:
            batch = torch.cat([batch, batch.new_zeros((batch_size - len(batch), *batch.shape[1:]))])
        backbone(batch.to(device, non_blocking=True)).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="UCF101 (or a subset) with split lists")
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds (medians reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    index = ucf101_index(args.root, fold=1)
    items = index.video_items()[:: max(1, len(index.records) // args.videos)][: args.videos]
    sampling = SamplingSpec(strategy="segments", num_segments=args.segments, short_side=256)
    backbone = build_backbone(BackboneSpec(name=args.backbone)).to(device)

    frames = torch.cat([
        backbone.preprocess(read_sampled(item.path, lambda i: sampling.indices(i.num_frames, i.fps), size=256)[0])
        for item in items
    ])
    # Rounds alternate the two measurements, and medians are compared: on a shared or throttled machine the speed
    # drifts over minutes, and a single pair of runs can land on either side of a drift.
    bounds, end_to_ends = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as cache_root:
            cache = FeatureCache(cache_root, backbone.spec, sampling, index.root)
            start = time.perf_counter()
            report = extract_features(items, cache, backbone, device=device, batch_size=args.batch_size,
                                      num_workers=args.workers, progress=False)
            end_to_ends.append(report.frames / (time.perf_counter() - start))
        bounds.append(cnn_only(backbone, frames, args.batch_size, device))
    bound, end_to_end = statistics.median(bounds), statistics.median(end_to_ends)

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {device}, torch {torch.__version__}")
    print(f"{len(items)} videos, {len(frames)} frames, backbone {args.backbone}, batch {args.batch_size}, "
          f"{args.workers} decoding workers")
    print(f"{'round':>6} {'CNN only':>12} {'end to end':>12} {'ratio':>7}")
    for number, (cnn, full) in enumerate(zip(bounds, end_to_ends), start=1):
        print(f"{number:>6} {cnn:>8.1f} f/s {full:>8.1f} f/s {full / cnn:>7.2f}")
    print(f"{'median':>6} {bound:>8.1f} f/s {end_to_end:>8.1f} f/s {end_to_end / bound:>7.2f}")


if __name__ == "__main__":
    main()

"""The CUDA paths in one short run: frozen-CNN throughput by precision and memory layout, what fp16 autocast does to
the features, and the tracker's speed on the GPU.

    python benchmarks/gpu_paths.py [--batch-size 64] [--frames 90]

1. EfficientNet-Lite0 trunk on batches of 224x224 frames: fp32 (contiguous), fp32 channels_last, and fp16 autocast +
   channels_last (what :class:`vidrnn.backbones.FrozenBackbone` does on CUDA): frames/s from CUDA events (median of
   rounds after warm-up).
2. Agreement of autocast features with fp32 on the same frames: cosine similarity and max relative difference of the
   pooled feature vectors (the cache stores float16 anyway).
3. The matching-only tracker online over a generated sequence, and the batched search that simulates training runs,
   in frames (crops) per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.data.synthetic_tracking import make_tracking_sequences
from vidrnn.data.tracking_sequences import load_sequence
from vidrnn.tracker.runtime import Tracker
from vidrnn.tracker.settings import TrackerSettings


def _frames_per_second(run, batch: torch.Tensor, rounds: int = 5) -> float:
    for _ in range(3):
        run(batch)
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run(batch)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return len(batch) / statistics.median(times)


def backbone_table(batch_size: int) -> None:
    backbone = build_backbone(BackboneSpec()).cuda()
    trunk = backbone.trunk
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (batch_size, 256, 320, 3), dtype=np.uint8)
    images = backbone.preprocess(frames).cuda()
    contiguous = images.contiguous()

    @torch.no_grad()
    def fp32_contiguous(x: torch.Tensor) -> torch.Tensor:
        return trunk.to(memory_format=torch.contiguous_format)(x)

    @torch.no_grad()
    def fp32_channels_last(x: torch.Tensor) -> torch.Tensor:
        return trunk.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))

    rows = [
        ("fp32, contiguous", _frames_per_second(fp32_contiguous, contiguous)),
        ("fp32, channels_last", _frames_per_second(fp32_channels_last, images)),
        ("fp16 autocast, channels_last (FrozenBackbone)", _frames_per_second(backbone, images)),
    ]
    print(f"\nEfficientNet-Lite0 trunk, batch {batch_size} at 224x224, {torch.cuda.get_device_name()}")
    print(f"| path | frames/s |\n|---|---:|")
    for name, fps in rows:
        print(f"| {name} | {fps:,.0f} |")

    with torch.no_grad():
        reference = fp32_channels_last(images).float().mean(dim=(2, 3))
        mixed = backbone(images)
    cosine = torch.nn.functional.cosine_similarity(reference, mixed, dim=1)
    relative = ((reference - mixed).abs().max(dim=1).values / reference.abs().max(dim=1).values)
    print(f"\nfp16 autocast vs fp32 pooled features ({batch_size} frames): cosine min {cosine.min():.6f}, "
          f"max relative difference {relative.max():.2e}")


def tracker_table(frames: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        sequence = load_sequence(make_tracking_sequences(Path(folder), num_sequences=1, num_frames=frames)[0])
        images = sequence.read()
    settings = TrackerSettings()
    tracker = Tracker.build(settings, device="cuda")
    list(tracker.track(iter(images[:10]), sequence.boxes[0]))  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    boxes = list(tracker.track(iter(images), sequence.boxes[0]))
    online = len(boxes) / (time.perf_counter() - start)
    template = tracker.search.template(images[0], sequence.boxes[0])
    batch = [images[index % len(images)] for index in range(64)]
    guesses = [sequence.boxes[index % len(images)] for index in range(64)]
    templates = template.expand(len(batch), -1, -1, -1)
    tracker.search.search(batch, guesses, templates)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(5):
        tracker.search.search(batch, guesses, templates)
    torch.cuda.synchronize()
    batched = 5 * len(batch) / (time.perf_counter() - start)
    print(f"\nTracker on {torch.cuda.get_device_name()} (crop {settings.geometry.size}, lite0 to blocks.10):")
    print(f"| mode | frames/s |\n|---|---:|\n| online, one frame at a time ({frames} frames) | {online:,.0f} |")
    print(f"| batched search (64 crops, as when simulating training runs) | {batched:,.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=90)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark measures the GPU paths only", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}")
    backbone_table(args.batch_size)
    tracker_table(args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())

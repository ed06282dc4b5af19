"""Feature extraction throughput: is the pipeline bounded by the CNN or the decoder, or by itself?

Three measurements in one run, on the same device, backbone, batch size and videos, alternating over rounds:

* **CNN only** — the same frames, decoded and cropped already, in memory, normalised and run through the frozen
  backbone as extraction runs them (:class:`vidrnn.embedding.FixedBatcher`: batches of the same fixed size, several
  at once on a CPU): what the CNN allows.
* **decode ceiling** — the same decoding processes (:func:`vidrnn.workers.isolated_map` over
  :class:`vidrnn.embedding.DecodedVideos`, as extraction starts them) decoding, resizing and cropping every video,
  each answering with its frame count only: what the decoders allow, nothing sent back.
* **end to end** — ``extract_features`` into a fresh cache: decode, crop, send, normalise, CNN, write.

The ratio is end to end over min(CNN only, decode ceiling): 1.0 means the pipeline costs nothing of its own. Where
the time goes is printed too: CPU time per frame of the decoding processes (alone, and end to end, where they also
send their frames) and of the main process end to end (normalising, the CNN, writing the cache) — on a machine whose
cores are all busy, end to end cannot beat the decode ceiling's CPU over its own.
``--profile N`` adds one end-to-end run under cProfile and prints the main process's N most expensive functions
(their own time): where its time goes between waiting for the decoders, gathering frames, the CNN and the cache.
``--cnn tiny`` swaps the CNN for a nearly free one (every 32nd pixel of the normalised crops, same preprocessing,
features of the real width): then the decoders are the bound, and the ratio shows the pipeline's own overhead —
sending frames between processes, batching, writing the cache — even on a CPU, where the real CNN hides it.

    python benchmarks/extract.py [--videos 48] [--rounds 3] [--batch-size 32] [--workers 2] [--cnn real|tiny]
                                 [--device cpu] [--profile 20]
    python benchmarks/extract.py --device cuda --videos 1000 --workers 16 --batch-size 64   # a GPU machine
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from vidrnn.backbones import BackboneSpec, FrozenBackbone, Preprocess, build_backbone
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.embedding import (DECODING_PREFETCH, DecodedVideos, EmbeddedVideo, FixedBatcher, VideoItem,
                              decoding_initializer)
from vidrnn.features import ExtractionReport, FeatureCache, extract_features
from vidrnn.sampling import SamplingSpec
from vidrnn.video import read_sampled
from vidrnn.workers import isolated_map

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucf101-mini"
#: Clips whose preprocessed frames the CNN-only measurement holds in memory.
CNN_ONLY_CLIPS = 64


class _Subsample(nn.Module):
    """The nearly free "CNN" of ``--cnn tiny``: the mean of every 32nd pixel of every 32nd row, repeated (a view, no
    copy) to the real network's channel count. It reads almost none of its input, so what is left of the time is the
    pipeline's; and its features have the real width, so the cache writes as many bytes and a trained classifier can
    read them."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        level = images[..., ::32, ::32].mean(dim=(1, 2, 3))
        return level.view(-1, 1, 1, 1).expand(-1, self.channels, 1, 1)


def spread(items: list[VideoItem], count: int) -> list[VideoItem]:
    """``count`` clips spread evenly over ``items``; past their number the clips come round again under new keys, so
    a small dataset still makes a long run (a GPU needs a thousand clips or more to show its steady state)."""
    if count <= len(items):
        return items[:: max(1, len(items) // count)][:count]
    return [VideoItem(item.path, f"{item.key}.round{n // len(items)}", item.label)
            for n, item in ((n, items[n % len(items)]) for n in range(count))]


def tiny_backbone(real: FrozenBackbone) -> FrozenBackbone:
    """A backbone with ``real``'s spec, preprocessing and feature width whose network costs almost nothing."""
    return FrozenBackbone(real.spec, _Subsample(real.channels), real.preprocess, real.channels)


def cnn_only(backbone, crops: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """Frames per second of the CNN as extraction runs it — :class:`~vidrnn.embedding.FixedBatcher`: normalised on the
    device into fixed-size batches, several batches at once on a CPU — over uint8 crops ``[N,3,h,w]`` already in
    memory: no decoding, nothing sent between processes."""
    with FixedBatcher(backbone, batch_size, device) as batcher:
        def run(frames: torch.Tensor) -> None:
            batcher.add(EmbeddedVideo(VideoItem(Path("in-memory"), "in-memory"), {}), frames)
            batcher.flush()

        # Warm-up: first-call allocations and kernel selection, every input batch touched and every thread started.
        run(crops[: (batcher.concurrent + 1) * batch_size])
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(crops)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(crops) / (time.perf_counter() - start)


class _FrameCount:
    """Decoding, resizing and cropping of one video, as extraction does it, answering only how many frames it gave."""

    def __init__(self, decoded: DecodedVideos) -> None:
        self.decoded = decoded

    def __call__(self, position: int) -> int:
        answer = self.decoded(position)
        return 0 if "error" in answer else len(answer["indices"])


def decode_ceiling(items: list[VideoItem], sampling: SamplingSpec, preprocess: Preprocess, workers: int,
                   steps: int | None = None) -> float:
    """Frames per second the decoding processes deliver when nothing waits for their frames (of the centred ``steps``
    alone, as classify decodes them, when given)."""
    work = _FrameCount(DecodedVideos(items, sampling, preprocess, identify=True, steps=steps))  # hashing too
    start = time.perf_counter()
    frames = sum(count for _, count in isolated_map(work, len(items), workers=workers, prefetch=DECODING_PREFETCH,
                                                      initializer=decoding_initializer))
    return frames / (time.perf_counter() - start)


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) so far of this process (all its threads) and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def profile_main_process(run: Callable[[], object], top: int) -> None:
    """Run once under cProfile and print the ``top`` functions of the main process by their own time. cProfile
    slows Python code down (C calls and waits much less), so read the shares, not the absolute times."""
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.runcall(run)
    print(f"profiled end-to-end run: {time.perf_counter() - start:.2f} s wall")
    pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(top)


class RoundTable:
    """Each round's (CNN only, decode ceiling, end to end) printed as soon as it is measured — a run cut short by a
    time limit still leaves its finished rounds — then their medians, each with the ratio of end to end to the
    smaller of the two bounds; last, the median of the rounds' own ratios: each round compares measurements taken
    within seconds of each other, so the machine's drift between rounds cancels out of it."""

    def __init__(self, unit: str) -> None:
        self.unit, self.rounds = unit, []
        print(f"{'round':>6} {'CNN only':>12} {'decode ceiling':>15} {'end to end':>12} {'ratio':>6}", flush=True)

    def _row(self, label: str, rates: tuple[float, float, float]) -> None:
        cnn, decode, full = rates
        unit = self.unit
        print(f"{label:>6} {cnn:>8.2f} {unit} {decode:>11.2f} {unit} {full:>8.2f} {unit} {full / min(cnn, decode):>6.2f}",
              flush=True)

    def add(self, rates: tuple[float, float, float]) -> None:
        self.rounds.append(rates)
        self._row(str(len(self.rounds)), rates)

    def finish(self) -> None:
        self._row("median", tuple(statistics.median(values) for values in zip(*self.rounds)))
        paired = statistics.median(full / min(cnn, decode) for cnn, decode, full in self.rounds)
        print(f"median of the rounds' ratios: {paired:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="UCF101 (or a subset) with split lists")
    parser.add_argument("--videos", type=int, default=48,
                        help="clips, spread over the dataset; more than it holds repeats them (default: 48)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--cnn", choices=("real", "tiny"), default="real",
                        help="real: the backbone; tiny: a nearly free stand-in with its preprocessing (default: real)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes (default: 2)")
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurement rounds (medians reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then profile one more end-to-end run and print the N costliest functions (default: 0)")
    args = parser.parse_args()

    device = torch.device(args.device)
    index = ucf101_index(args.root, fold=1)
    items = spread(index.video_items(), args.videos)
    sampling = SamplingSpec(strategy="segments", num_segments=args.segments, short_side=256)
    backbone = build_backbone(BackboneSpec(name=args.backbone))
    if args.cnn == "tiny":
        backbone = tiny_backbone(backbone)
    backbone = backbone.to(device)

    # The CNN's speed needs no more than a few dozen clips in memory (a thousand would take gigabytes).
    crops = torch.cat([
        backbone.preprocess.resize_and_crop(
            read_sampled(item.path, lambda i: sampling.indices(i.num_frames, i.fps), size=256)[0])
        for item in items[:CNN_ONLY_CLIPS]
    ]).contiguous(memory_format=torch.channels_last)  # as the decoding processes send them
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads, device {device}, torch {torch.__version__}")
    print(f"{len(items)} videos, CNN {args.cnn} ({args.backbone} preprocessing), batch {args.batch_size}, "
          f"{args.workers} decoding workers")

    def end_to_end() -> ExtractionReport:
        with tempfile.TemporaryDirectory() as cache_root:
            cache = FeatureCache(cache_root, backbone.spec, sampling, index.root, device, args.batch_size)
            return extract_features(items, cache, backbone, device=device, num_workers=args.workers, progress=False)

    # Rounds alternate the measurements, and medians are compared: on a shared or throttled machine the speed drifts
    # over minutes, and a single set of runs can land on either side of a drift. Every other round runs the three in
    # reverse order, so that a steady drift favours none of them.
    table, cpu_ms = RoundTable("f/s"), []
    for round_ in range(args.rounds):
        rates, cpu = {}, {}
        order = ["cnn", "ceiling", "end_to_end"]
        for name in order if round_ % 2 == 0 else order[::-1]:
            before = cpu_seconds()
            if name == "cnn":
                rates[name] = cnn_only(backbone, crops, args.batch_size, device)
            elif name == "ceiling":
                rates[name] = decode_ceiling(items, sampling, backbone.preprocess, args.workers)
            else:
                start = time.perf_counter()
                report = end_to_end()
                rates[name] = report.frames / (time.perf_counter() - start)
            cpu[name] = [after - first for first, after in zip(before, cpu_seconds())]
        table.add((rates["cnn"], rates["ceiling"], rates["end_to_end"]))
        # ms a frame: the decoders alone, the decoders end to end, the main process end to end
        cpu_ms.append(tuple(1000 * seconds / report.frames
                            for seconds in (cpu["ceiling"][1], cpu["end_to_end"][1], cpu["end_to_end"][0])))

    table.finish()
    alone, decoders, main_process = (statistics.median(values) for values in zip(*cpu_ms))
    print(f"{report.frames} frames a round; CPU a frame (medians): decoders alone {alone:.2f} ms; end to end, "
          f"decoders {decoders:.2f} ms + main process {main_process:.2f} ms (normalising, CNN, writing)")
    if args.profile:
        profile_main_process(end_to_end, args.profile)


if __name__ == "__main__":
    main()

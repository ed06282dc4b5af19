"""Embed a stream of videos: decode them in worker processes, run the frozen CNN over their frames in fixed batches.

One loop serves both uses of the frozen CNN on videos: filling the feature cache (:mod:`vidrnn.features`) and
classifying new videos (:class:`vidrnn.inference.Predictor`). Videos are decoded, resized and cropped in worker
processes (:func:`vidrnn.workers.isolated_map`) and sent as uint8 crops to the main process, where they are normalised
on the CNN's device and the CNN runs; a decoder that crashes its worker (a
segfault or an abort in native code) costs that one video, reported as failed, never the run. Frames of consecutive
videos are packed into batches of exactly ``batch_size`` (the last one zero-padded), so a frame's features never
depend on which other frames shared its batch — what makes a resumed or multi-rank cache byte-identical to one
uninterrupted run, and a prediction equal to ``vidrnn test``'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidrnn.backbones import FrozenBackbone, Preprocess
from vidrnn.sampling import SamplingSpec
from vidrnn.video import VideoReadError, read_sampled
from vidrnn.workers import WorkerCrash, available_cores, isolated_map

__all__ = ["DecodedVideos", "EmbeddedVideo", "FailedVideo", "FixedBatcher", "VideoItem", "decoding_initializer", "embed_videos"]


@dataclass(frozen=True)
class VideoItem:
    """A video to extract: where it is, its key in the cache (path relative to the videos root), its label."""

    path: Path
    key: str
    label: str | None = None


def _identity(path: Path) -> tuple[int, int]:
    """Size and modification time of a file; ``(-1, -1)`` (never current) when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


def _to_plain(images: torch.Tensor) -> np.ndarray:
    """``[N,3,h,w]`` images (channels-last strides) as the contiguous ``[N,h,w,3]`` array of their pixels: plain data
    to send between processes (see :mod:`vidrnn.workers`)."""
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())


def _from_plain(array: np.ndarray) -> torch.Tensor:
    """The inverse of :func:`_to_plain`."""
    return torch.from_numpy(array).permute(0, 3, 1, 2)


#: Videos queued per decoding process: one being decoded, the next ones ready, so that a process never waits for the
#: main process to hand it work (more holds more decoded videos in memory, and a longer tail at the end of a run).
DECODING_PREFETCH = 4


def decoding_initializer() -> None:
    """Each decoding process uses one thread for torch (as DataLoader workers do): the processes are the parallelism."""
    torch.set_num_threads(1)


class DecodedVideos:
    """Decoding, resizing and cropping of one video per call (by its position in ``items``); runs inside worker
    processes.

    The answer holds the network's crops still in uint8 (:meth:`~vidrnn.backbones.Preprocess.resize_and_crop`):
    normalising to float32 happens where the CNN runs, on its device, a batch at a time (:class:`FixedBatcher`). Sent
    between processes, uint8 crops are a quarter of the bytes of float32 ones, and on a GPU the float work leaves the
    CPU altogether.
    """

    def __init__(self, items: Sequence[VideoItem], sampling: SamplingSpec, preprocess: Preprocess) -> None:
        self.items, self.sampling, self.preprocess = items, sampling, preprocess

    def __call__(self, position: int) -> dict[str, Any]:
        item = self.items[position]
        try:
            # The file's identity as it is decoded: one replaced afterwards is found stale by the next run. A file that
            # cannot even be looked at is left to the reader, which names the reason.
            source = _identity(item.path)
            frames, indices, info = read_sampled(
                item.path,
                lambda probed: self.sampling.indices(probed.num_frames, probed.fps),
                size=self.sampling.short_side,
            )
            crops = self.preprocess.resize_and_crop(frames)
        except VideoReadError as error:
            return {"error": error.reason}
        except Exception as error:  # a decoder bug on one file must not end a batch job: report it, go on
            return {"error": f"{type(error).__name__}: {error}"}
        return {"crops": _to_plain(crops), "indices": indices, "fps": info.fps, "frames": info.num_frames,
                "source": source}


@dataclass
class EmbeddedVideo:
    """A decoded video and its CNN outputs (``decoded``: the frame ``indices``, source ``fps`` and ``frames`` count the
    decoder reported)."""

    item: VideoItem
    decoded: dict[str, Any]
    outputs: list[torch.Tensor] = field(default_factory=list)
    remaining: int = 0

    @property
    def features(self) -> torch.Tensor:
        """``[T, ...]``: every frame's CNN output, in frame order (once the video left the batcher)."""
        return torch.cat(self.outputs)


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """torch on one thread for the duration, when ``device`` is the CPU.

    For normalising frames on a CPU: work that short and memory-bound gains little from a second thread, and loses
    much when the decoding processes hold the other cores — each operation then waits for its second half until the
    scheduler gives that thread a core."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Batch:
    """A batch the CNN has been given: whose frames it holds, and its outputs on their way to the host (``copied``:
    the CUDA event after which they are there; ``None`` when they already are)."""

    owners: list[tuple[EmbeddedVideo, int]]
    features: torch.Tensor
    copied: torch.cuda.Event | None


def _to_host(features: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start copying CNN outputs to the host without waiting for them: into pinned memory, on the current stream of
    the outputs' own GPU (which need not be the current device: ``--device cuda:1`` on one process)."""
    if features.device.type != "cuda":
        return features.cpu(), None
    with torch.cuda.device(features.device):
        host = torch.empty(features.shape, dtype=features.dtype, pin_memory=True)
        host.copy_(features, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record()
    return host, copied


class FixedBatcher:
    """Packs the uint8 crops of consecutive videos into CNN batches of exactly ``batch_size`` frames.

    Each video's crops go to the device as they are (a quarter of the bytes of float32) and are normalised there,
    straight into their rows of one float32 batch that lives as long as the batcher: no concatenation, and no fresh
    allocation (whose first touch of every page costs more on a CPU than the normalisation itself).

    A batch's results are handed out once the next batch has been given to the CNN (or at :meth:`flush`): on a GPU,
    whose work runs asynchronously, the CPU's work between batches — reading decoded videos, writing the cache — then
    overlaps the CNN's instead of waiting for it. (Reusing the one input batch is safe there: the normalisation that
    refills it is queued on the same stream, behind the CNN that reads it.)"""

    def __init__(self, backbone: FrozenBackbone, batch_size: int, device: torch.device) -> None:
        self.backbone, self.batch_size, self.device = backbone, batch_size, device
        self.queue: list[tuple[EmbeddedVideo, torch.Tensor]] = []
        self.queued = 0
        self.batch: torch.Tensor | None = None
        self.in_flight: _Batch | None = None

    def add(self, pending: EmbeddedVideo, images: torch.Tensor) -> list[EmbeddedVideo]:
        """Queue a video's crops (uint8 ``[T,3,h,w]``); return the videos completed by the batch before the one this
        started, if it started one."""
        pending.remaining = len(images)
        self.queue.append((pending, images))
        self.queued += len(images)
        finished: list[EmbeddedVideo] = []
        while self.queued >= self.batch_size:
            finished += self._run(self.batch_size)
        return finished

    def flush(self) -> list[EmbeddedVideo]:
        """Run what is queued (a smaller batch, padded) and return every video not returned yet."""
        finished = self._run(self.queued) if self.queued else []
        if self.in_flight is not None:
            finished += self._land(self.in_flight)
            self.in_flight = None
        return finished

    def _input_batch(self, frame_shape: torch.Size) -> torch.Tensor:
        """The float32 batch for frames of ``frame_shape``, made again only when the frame size changes."""
        if self.batch is None or self.batch.shape[1:] != frame_shape:
            self.batch = torch.empty((self.batch_size, *frame_shape), dtype=torch.float32, device=self.device,
                                     memory_format=torch.channels_last)
        return self.batch

    def _run(self, count: int) -> list[EmbeddedVideo]:
        """Give the CNN the next ``count`` queued frames; return the videos the batch before this one completed."""
        batch = self._input_batch(self.queue[0][1].shape[1:])
        normalize = self.backbone.preprocess.normalize
        owners, taken = [], 0
        with _one_cpu_thread(self.device):
            while taken < count:
                pending, images = self.queue[0]
                part = images[: count - taken]
                normalize(part.to(self.device, non_blocking=True), out=batch[taken : taken + len(part)])
                owners.append((pending, len(part)))
                taken += len(part)
                if len(part) == len(images):
                    self.queue.pop(0)
                else:
                    self.queue[0] = (pending, images[len(part):])
            if count < self.batch_size:  # pad, so every frame sees the same batch shape (bitwise-stable features)
                normalize(torch.zeros((self.batch_size - count, *batch.shape[1:]), dtype=torch.uint8,
                                      device=self.device), out=batch[count:])
        self.queued -= count
        previous, self.in_flight = self.in_flight, _Batch(owners, *_to_host(self.backbone(batch)[:count]))
        return self._land(previous) if previous is not None else []

    @staticmethod
    def _land(batch: _Batch) -> list[EmbeddedVideo]:
        """Give each of a batch's videos its outputs (once they are on the host); return those now complete."""
        if batch.copied is not None:
            batch.copied.synchronize()
        finished, offset = [], 0
        for pending, size in batch.owners:
            pending.outputs.append(batch.features[offset : offset + size])
            offset += size
            pending.remaining -= size
            if pending.remaining == 0:
                finished.append(pending)
        return finished


@dataclass(frozen=True)
class FailedVideo:
    """A video that could not be decoded, and why."""

    item: VideoItem
    reason: str


def embed_videos(items: Sequence[VideoItem], sampling: SamplingSpec, backbone: FrozenBackbone, *,
                 device: torch.device, batch_size: int = 32,
                 num_workers: int | None = None) -> Iterator[EmbeddedVideo | FailedVideo]:
    """Yield every item once, embedded or failed: a failed one at once, an embedded one once the batch holding its
    last frame is done (see :class:`FixedBatcher`); not in input order.

    ``num_workers`` decoding processes (default: one per available core; 0: decode here, where a crashing decoder
    ends the process). Processes that cannot start at all raise :class:`~vidrnn.workers.WorkerStartError`: that is
    the environment, not the videos."""
    workers = available_cores() if num_workers is None else num_workers
    decoding = isolated_map(DecodedVideos(items, sampling, backbone.preprocess), len(items), workers=workers,
                            prefetch=DECODING_PREFETCH, initializer=decoding_initializer)
    batcher = FixedBatcher(backbone, batch_size, device)
    for position, decoded in decoding:
        item = items[position]
        if isinstance(decoded, WorkerCrash):  # a native crash in FFmpeg/OpenCV: this video fails, the run goes on
            yield FailedVideo(item, f"the decoder crashed: {decoded.reason}")
        elif "error" in decoded:
            yield FailedVideo(item, decoded["error"])
        else:
            yield from batcher.add(EmbeddedVideo(item, decoded), _from_plain(decoded.pop("crops")))
    yield from batcher.flush()

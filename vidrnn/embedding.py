"""Embed a stream of videos: decode them in worker processes, run the frozen CNN over their frames in fixed batches.

One loop serves both uses of the frozen CNN on videos: filling the feature cache (:mod:`vidrnn.features`) and
classifying new videos (:class:`vidrnn.inference.Predictor`). Videos are decoded, resized and cropped in worker
processes (:func:`vidrnn.workers.isolated_map`) and sent as uint8 crops to the main process, where they are normalised
on the CNN's device and the CNN runs; a decoder that crashes its worker (a
segfault or an abort in native code) costs that one video, reported as failed, never the run. Frames of consecutive
videos are packed into batches of exactly ``batch_size`` (the last one, and one cut short by a change of frame
size, zero-padded), so a frame's features never depend on which other frames shared its batch — what makes a resumed
or multi-rank cache byte-identical to one uninterrupted run, and a prediction equal to ``vidrnn test``'s.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidrnn.backbones import FrozenBackbone, Preprocess
from vidrnn.devices import start_copy_to_host
from vidrnn.files import source_identity
from vidrnn.sampling import SamplingSpec, segment_indices
from vidrnn.video import VideoReadError, read_sampled
from vidrnn.workers import WorkerCrash, available_cores, isolated_map

__all__ = ["DecodedVideos", "EmbeddedVideo", "FailedVideo", "FixedBatcher", "VideoItem", "decoding_initializer", "embed_videos"]


@dataclass(frozen=True)
class VideoItem:
    """A video to extract: where it is, its key in the cache (path relative to the videos root), its label."""

    path: Path
    key: str
    label: str | None = None


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


#: Batches a :class:`FixedBatcher` on CUDA runs eagerly before it captures the CNN as a CUDA graph.
EAGER_BATCHES = 2


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

    def __init__(self, items: Sequence[VideoItem], sampling: SamplingSpec, preprocess: Preprocess,
                 identify: bool = False, steps: int | None = None) -> None:
        self.items, self.sampling, self.preprocess, self.identify = items, sampling, preprocess, identify
        self.steps = steps

    def _kept(self, chosen: int) -> np.ndarray:
        """Positions of the frames decoded among the ``chosen`` ones: the centred ``steps`` (evaluation's)."""
        return segment_indices(chosen, self.steps)

    def __call__(self, position: int) -> dict[str, Any]:
        item = self.items[position]
        try:
            # With ``identify``, the file's identity as it is decoded (a cache's record: one replaced afterwards is
            # found stale by the next run), hashed here, in the decoding processes, which read the file anyway. A file
            # that cannot even be looked at is left to the reader, which names the reason.
            source = source_identity(item.path) if self.identify else None
            frames, indices, info = read_sampled(
                item.path,
                lambda probed: self.sampling.indices(probed.num_frames, probed.fps),
                size=self.sampling.short_side,
                keep=None if self.steps is None else self._kept,
            )
            crops = self.preprocess.resize_and_crop(frames)
        except VideoReadError as error:
            return {"error": error.reason}
        except Exception as error:  # a decoder bug on one file must not end a batch job: report it, go on
            return {"error": f"{type(error).__name__}: {error}"}
        return {"crops": _to_plain(crops), "indices": indices, "fps": info.fps, "frames": info.num_frames,
                "source": source, "cut_short": info.cut_short}


@dataclass
class EmbeddedVideo:
    """A decoded video and its CNN outputs (``decoded``: the frame ``indices``, source ``fps`` and ``frames`` count the
    decoder reported, and ``cut_short``: its :class:`~vidrnn.video.CutShort` where it held far fewer frames than its
    container states, else None)."""

    item: VideoItem
    decoded: dict[str, Any]
    outputs: list[torch.Tensor] = field(default_factory=list)
    remaining: int = 0

    @property
    def features(self) -> torch.Tensor:
        """``[T, ...]``: every frame's CNN output, in frame order (once the video left the batcher), on the host.

        Joined by numpy, on this thread alone: torch's CPU copy of a long video spreads over its thread pool, whose
        threads spin against the decoding processes for the cores (see :meth:`FixedBatcher._fill_on_gpu`)."""
        return torch.from_numpy(np.concatenate([output.numpy() for output in self.outputs]))


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


def _one_thread_here() -> None:
    """Make torch's operations in the calling thread run on that thread alone.

    torch sets a thread's operation thread count from a process-wide value the first time the thread asks for it;
    asked first, the count set after it stays the thread's own. (Set first, it was overwritten by whatever the
    process-wide value had become by the thread's first operation: the first batches ran on two threads.)"""
    torch.get_num_threads()
    torch.set_num_threads(1)


@dataclass
class _Batch:
    """A batch the CNN has been given: whose frames it holds, and its outputs — on their way to the host (``copied``:
    the CUDA event after which they are there; ``None`` when they already are), or still being computed by a thread
    (a future, on a CPU)."""

    owners: list[tuple[EmbeddedVideo, int]]
    features: torch.Tensor | Future
    copied: torch.cuda.Event | None


class _CapturedForward:
    """A frozen CNN's forward pass over one CUDA input batch, captured once as a CUDA graph and replayed for every
    batch written into that same tensor.

    Replaying launches the whole network at once, where running it eagerly costs the CPU a few microseconds per kernel
    — for EfficientNet-Lite0 at batch 64, about as long as the GPU needs for the batch. The kernels are the same, so
    are the features (``tests/test_cuda.py``). The outputs live in the graph's memory, overwritten by the next replay:
    their copy to the host is queued before it, on the same stream."""

    def __init__(self, backbone: FrozenBackbone, inputs: torch.Tensor) -> None:
        self.inputs, self.graph = inputs, torch.cuda.CUDAGraph()
        with torch.cuda.device(inputs.device):
            # Warm-up on a side stream, as capture requires: lazy initialisation (cuDNN handles, workspaces) must not
            # happen inside the graph.
            side, current = torch.cuda.Stream(), torch.cuda.current_stream()
            side.wait_stream(current)
            with torch.cuda.stream(side):
                for _ in range(2):
                    backbone(inputs)
            current.wait_stream(side)
            try:
                # On this device's side stream (torch's default capture stream belongs to whichever device captured
                # first), failing only this thread's unsafe calls, not those of other threads in the process.
                with torch.cuda.graph(self.graph, stream=side, capture_error_mode="thread_local"):
                    self.outputs = backbone(inputs)
            finally:
                torch.cuda.set_stream(current)  # torch restores it only when the capture succeeds

    def replay(self) -> torch.Tensor:
        with torch.cuda.device(self.inputs.device):
            self.graph.replay()
        return self.outputs


class FixedBatcher:
    """Packs the uint8 crops of consecutive videos into CNN batches of exactly ``batch_size`` frames of one size (a
    change of size, which only spatial maps of whole frames have, ends the batch being filled: :meth:`add`).

    Each video's crops go to the device as they are (a quarter of the bytes of float32) and are normalised there,
    straight into their rows of a float32 input batch that lives as long as the batcher: no concatenation, and no
    fresh allocation (whose first touch of every page costs more on a CPU than the normalisation itself).

    The CNN runs while the next batch is being filled, and a batch's results are handed out once later batches have
    been given to the CNN (or at :meth:`flush`). On a GPU, whose work runs asynchronously, one batch is in flight: the
    CPU's work between batches — reading decoded videos, writing the cache — overlaps the GPU's, and the one input
    batch is reused safely (the normalisation that refills it is queued on the same stream, behind the CNN that reads
    it). Two things keep the CPU from waiting there: a batch's crops are gathered in pinned host memory and sent in
    one copy (a copy from ordinary memory waits for the GPU to finish the work queued before it — the CNN — so the
    main process and the CNN took turns: 0.59 of the decoders' speed on an H200), and the CNN runs as a CUDA graph,
    captured at the third batch and replayed (its hundreds of kernel launches cost the CPU about as long as the GPU
    takes to run them); a network that cannot be captured runs eagerly, with a warning.

    On a CPU, as many batches as torch has threads run at once, each on one thread of its own, and each has an input
    batch of its own plus one being filled: a batch split over two threads waits at every operation for its slower
    half, and while the decoding processes hold a core one half often waits for the scheduler (on two cores the CNN
    lost ~20 % of its speed that way). One thread per batch also makes a frame's features independent of the
    thread count (with torch's OpenMP backend, that of its PyPI wheels). The price is memory: as many input batches
    plus one, and as many forwards' activations at once — on a CPU with dozens of cores, gigabytes; bound it with
    ``torch.set_num_threads`` (or ``OMP_NUM_THREADS``). Use it as a context manager (or call :meth:`close`): the
    threads end with it."""

    def __init__(self, backbone: FrozenBackbone, batch_size: int, device: torch.device) -> None:
        if batch_size < 1:  # 0 would never fill a batch: add() would run empty batches forever
            raise ValueError(f"the CNN's batch size must be at least 1, got {batch_size}")
        self.backbone, self.batch_size, self.device = backbone, batch_size, device
        self.queue: list[tuple[EmbeddedVideo, torch.Tensor]] = []
        self.queued = 0
        # torch's thread count, but never more batches than cores this process may use (torch counts the machine's).
        self.concurrent = max(1, min(torch.get_num_threads(), available_cores())) if device.type == "cpu" else 1
        self.inputs: list[torch.Tensor] = []
        self.staging: list[tuple[torch.Tensor, torch.cuda.Event]] = []  # CUDA: pinned uint8 batches, their copies
        self.uint8_batch: torch.Tensor | None = None  # CUDA: where the staged crops land on the device
        self.graph: _CapturedForward | None = None
        self.eager = device.type != "cuda"  # CUDA: until a capture fails
        self.batches_run = 0
        self.in_flight: deque[_Batch] = deque()
        self.threads: ThreadPoolExecutor | None = None

    def add(self, pending: EmbeddedVideo, images: torch.Tensor) -> list[EmbeddedVideo]:
        """Queue a video's crops (uint8 ``[T,3,h,w]``, in host memory); return the videos that batches given to the CNN earlier have
        completed, if this started a batch.

        Crops of another size than those queued (spatial maps are of whole frames: a portrait clip after a landscape
        one) first send the queued frames off as a batch of their own, zero-padded as a last batch is: a batch holds
        one size, and every frame still sees a batch of ``batch_size``, so its features do not depend on its
        neighbours."""
        finished = self._run(self.queued) if self.queue and self.queue[0][1].shape[1:] != images.shape[1:] else []
        pending.remaining = len(images)
        self.queue.append((pending, images))
        self.queued += len(images)
        while self.queued >= self.batch_size:
            finished += self._run(self.batch_size)
        return finished

    def flush(self) -> list[EmbeddedVideo]:
        """Run what is queued (a smaller batch, padded) and return every video not returned yet."""
        finished = self._run(self.queued) if self.queued else []
        while self.in_flight:
            finished += self._land(self.in_flight.popleft())
        return finished

    def close(self) -> None:
        """End the CNN's threads, after the batches they are running. Whatever was not handed out yet — batches in
        flight, frames still queued — is dropped."""
        if self.threads is not None:
            self.threads.shutdown(wait=True, cancel_futures=True)
            self.threads = None
            # Each thread's start set torch's process-wide thread count to 1 (see _one_thread_here); a thread that
            # first uses torch after this would otherwise get one thread. This thread's own count is the one to keep.
            torch.set_num_threads(torch.get_num_threads())
        if self.graph is not None:  # its memory is freed with it, without waiting for a replay still running
            with torch.cuda.device(self.device):
                torch.cuda.current_stream().synchronize()
            self.graph = None
        self.in_flight.clear()
        self.queue.clear()
        self.queued = 0
        self.batches_run = 0

    def __enter__(self) -> FixedBatcher:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def _input_batch(self, frame_shape: torch.Size) -> torch.Tensor:
        """The float32 input batch to fill next, for frames of ``frame_shape`` (made again only when the frame size
        changes). On a CPU it takes turns with the others, and the batch that last read it has landed."""
        count = self.concurrent + 1 if self.device.type == "cpu" else 1
        if len(self.inputs) != count or self.inputs[0].shape[1:] != frame_shape:
            self.inputs = [torch.empty((self.batch_size, *frame_shape), dtype=torch.float32, device=self.device,
                                       memory_format=torch.channels_last) for _ in range(count)]
        return self.inputs[self.batches_run % count]

    def _run(self, count: int) -> list[EmbeddedVideo]:
        """Give the CNN the next ``count`` queued frames; return the videos completed by the batches that landed to
        make room for it."""
        batch = self._input_batch(self.queue[0][1].shape[1:])
        owners, parts = self._take(count)
        if self.device.type == "cuda":
            self._fill_on_gpu(parts, batch)
        else:
            self._fill_here(parts, batch)
        self.batches_run += 1
        if self.device.type == "cpu":
            self.in_flight.append(_Batch(owners, self._cnn_threads().submit(self._forward, batch, count), None))
        else:
            self.in_flight.append(_Batch(owners, *start_copy_to_host(self._forward(batch, count))))
        finished = []
        while len(self.in_flight) > self.concurrent:
            finished += self._land(self.in_flight.popleft())
        return finished

    def _take(self, count: int) -> tuple[list[tuple[EmbeddedVideo, int]], list[torch.Tensor]]:
        """The next ``count`` queued frames, as the videos they belong to (with how many of each) and their crops."""
        owners, parts, taken = [], [], 0
        while taken < count:
            pending, images = self.queue[0]
            part = images[: count - taken]
            owners.append((pending, len(part)))
            parts.append(part)
            taken += len(part)
            if len(part) == len(images):
                self.queue.pop(0)
            else:
                self.queue[0] = (pending, images[len(part):])
        self.queued -= count
        return owners, parts

    def _fill_here(self, parts: list[torch.Tensor], batch: torch.Tensor) -> None:
        """Normalise each part into its rows of ``batch`` where the crops are (no device copy: a CPU, or the
        device of a non-CUDA backend), zeros in the rows left over: every frame sees the same batch shape
        (bitwise-stable features)."""
        normalize, offset = self.backbone.preprocess.normalize, 0
        with _one_cpu_thread(self.device):
            for part in parts:
                normalize(part.to(self.device), out=batch[offset : offset + len(part)])
                offset += len(part)
            if offset < self.batch_size:
                normalize(torch.zeros((self.batch_size - offset, *batch.shape[1:]), dtype=torch.uint8,
                                      device=self.device), out=batch[offset:])

    def _fill_on_gpu(self, parts: list[torch.Tensor], batch: torch.Tensor) -> None:
        """Gather the parts (zeros after them) in pinned memory, copy them to the GPU in one go without waiting,
        normalise them there into ``batch``.

        The gathering is numpy's copy, on this thread alone: torch's CPU copy spreads over its thread pool, whose
        threads spin against the decoding processes for the cores (on an H200 machine with 16 of each, the main
        process then burned 4.6 ms of CPU a frame and extraction fell to 0.35 of the decoders' speed). The pinned
        batches take turns, and each is refilled only once its last copy is done: with one batch in flight, that copy
        ended long before (it was queued ahead of the CNN that the previous batch waited for)."""
        shape = (self.batch_size, *batch.shape[1:])
        if len(self.staging) != 2 or self.staging[0][0].shape != (self.batch_size, *shape[2:], 3):
            self.staging = [(torch.empty((self.batch_size, *shape[2:], 3), dtype=torch.uint8, pin_memory=True),
                             torch.cuda.Event(blocking=True)) for _ in range(2)]
            self.uint8_batch = torch.empty(shape, dtype=torch.uint8, device=self.device,
                                           memory_format=torch.channels_last)
        staging, copied = self.staging[self.batches_run % 2]
        copied.synchronize()
        pixels, offset = staging.numpy(), 0  # [B,h,w,3]: the memory of channels-last [B,3,h,w]
        for part in parts:
            pixels[offset : offset + len(part)] = part.cpu().permute(0, 2, 3, 1).numpy()
            offset += len(part)
        pixels[offset:] = 0
        with torch.cuda.device(self.device):
            self.uint8_batch.copy_(staging.permute(0, 3, 1, 2), non_blocking=True)
            copied.record()
        self.backbone.preprocess.normalize(self.uint8_batch, out=batch)

    def _forward(self, batch: torch.Tensor, count: int) -> torch.Tensor:
        """The CNN's outputs for the first ``count`` frames of ``batch``. On CUDA the first ``EAGER_BATCHES`` batches
        run eagerly and the next captures the graph: a capture costs a few forwards, not worth it for a clip or two
        (``Predictor.predict_frames`` makes a batcher per clip)."""
        if self.eager or self.batches_run <= EAGER_BATCHES:
            return self.backbone(batch)[:count]
        if self.graph is None or self.graph.inputs is not batch:
            try:
                self.graph = _CapturedForward(self.backbone, batch)
            except Exception as error:  # e.g. an operation that waits for the CPU: it cannot be captured
                warnings.warn(f"the CNN cannot run as a CUDA graph ({type(error).__name__}: {error}); it runs "
                              "eagerly, at the cost of the CPU time of its kernel launches", stacklevel=2)
                self.eager, self.graph = True, None
                return self.backbone(batch)[:count]
        return self.graph.replay()[:count]

    def _cnn_threads(self) -> ThreadPoolExecutor:
        if self.threads is None:
            self.threads = ThreadPoolExecutor(self.concurrent, thread_name_prefix="vidrnn-cnn",
                                              initializer=_one_thread_here)
        return self.threads

    @staticmethod
    def _land(batch: _Batch) -> list[EmbeddedVideo]:
        """Give each of a batch's videos its outputs (once they are on the host); return those now complete."""
        features = batch.features.result() if isinstance(batch.features, Future) else batch.features
        if batch.copied is not None:
            batch.copied.synchronize()
        finished, offset = [], 0
        for pending, size in batch.owners:
            pending.outputs.append(features[offset : offset + size])
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
                 device: torch.device, batch_size: int = 32, num_workers: int | None = None,
                 identify: bool = False, steps: int | None = None) -> Iterator[EmbeddedVideo | FailedVideo]:
    """Yield every item once, embedded or failed: a failed one at once, an embedded one once the batch holding its
    last frame is done (see :class:`FixedBatcher`); not in input order. With ``identify`` each embedded video's
    ``decoded["source"]`` is its file's :class:`~vidrnn.files.SourceIdentity` as it was decoded (what a cache
    records), else ``None``.

    ``steps``: decode only the centred ``steps`` of the frames ``sampling`` chooses (evaluation reads no others of a
    cached clip; inference on new videos then holds ``steps`` frames a video however long it is); None: all of them.
    ``num_workers`` decoding processes (default: one per available core; 0: decode here, where a crashing decoder
    ends the process). Processes that cannot start at all raise :class:`~vidrnn.workers.WorkerStartError`: that is
    the environment, not the videos."""
    workers = available_cores() if num_workers is None else num_workers
    decoding = isolated_map(DecodedVideos(items, sampling, backbone.preprocess, identify, steps), len(items),
                            workers=workers, prefetch=DECODING_PREFETCH, initializer=decoding_initializer)
    with FixedBatcher(backbone, batch_size, device) as batcher:  # its threads end with the run, also when cut short
        for position, decoded in decoding:
            item = items[position]
            if isinstance(decoded, WorkerCrash):  # a native crash in FFmpeg/OpenCV: this video fails, the run goes on
                yield FailedVideo(item, f"the decoder crashed: {decoded.reason}")
            elif "error" in decoded:
                yield FailedVideo(item, decoded["error"])
            else:
                yield from batcher.add(EmbeddedVideo(item, decoded), _from_plain(decoded.pop("crops")))
        yield from batcher.flush()

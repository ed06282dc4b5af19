"""Embed a stream of videos: decode them in worker processes, run the frozen CNN over their frames in fixed batches.

One loop serves both uses of the frozen CNN on videos: filling the feature cache (:mod:`vidrnn.features`) and
classifying new videos (:class:`vidrnn.inference.Predictor`). Videos are decoded and preprocessed in DataLoader
worker processes while the CNN runs in the main process; frames of consecutive videos are packed into batches of
exactly ``batch_size`` (the last one zero-padded), so a frame's features never depend on which other frames shared its
batch — what makes a resumed or multi-rank cache byte-identical to one uninterrupted run, and a prediction equal to
``vidrnn test``'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from vidrnn.backbones import FrozenBackbone, Preprocess
from vidrnn.sampling import SamplingSpec
from vidrnn.video import VideoReadError, read_sampled

__all__ = ["DecodedVideos", "EmbeddedVideo", "FailedVideo", "FixedBatcher", "VideoItem", "embed_videos"]


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


class DecodedVideos(Dataset):
    """Decoding + preprocessing of one video per item; runs inside DataLoader worker processes."""

    def __init__(self, items: Sequence[VideoItem], sampling: SamplingSpec, preprocess: Preprocess) -> None:
        self.items, self.sampling, self.preprocess = items, sampling, preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict[str, Any]:
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
            images = self.preprocess(frames)
        except VideoReadError as error:
            return {"position": position, "error": error.reason}
        except Exception as error:  # a decoder bug on one file must not end a batch job: report it, go on
            return {"position": position, "error": f"{type(error).__name__}: {error}"}
        return {"position": position, "images": images, "indices": indices, "fps": info.fps, "frames": info.num_frames,
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


class FixedBatcher:
    """Packs frames of consecutive videos into CNN batches of exactly ``batch_size`` frames."""

    def __init__(self, backbone: FrozenBackbone, batch_size: int, device: torch.device) -> None:
        self.backbone, self.batch_size, self.device = backbone, batch_size, device
        self.queue: list[tuple[EmbeddedVideo, torch.Tensor]] = []
        self.queued = 0

    def add(self, pending: EmbeddedVideo, images: torch.Tensor) -> list[EmbeddedVideo]:
        pending.remaining = len(images)
        self.queue.append((pending, images))
        self.queued += len(images)
        finished: list[EmbeddedVideo] = []
        while self.queued >= self.batch_size:
            finished += self._run(self.batch_size)
        return finished

    def flush(self) -> list[EmbeddedVideo]:
        return self._run(self.queued) if self.queued else []

    def _run(self, count: int) -> list[EmbeddedVideo]:
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
        batch = torch.cat(parts)
        if count < self.batch_size:  # pad, so every frame sees the same batch shape (bitwise-stable features)
            padding = batch.new_zeros((self.batch_size - count, *batch.shape[1:]))
            batch = torch.cat([batch, padding])
        features = self.backbone(batch.to(self.device, non_blocking=True))[:count].cpu()
        finished, offset = [], 0
        for pending, size in owners:
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


def _keep(item: dict[str, Any]) -> dict[str, Any]:
    """Collate for one-video items: hand them over as they are (the CNN batches frames itself, across videos)."""
    return item


def embed_videos(items: Sequence[VideoItem], sampling: SamplingSpec, backbone: FrozenBackbone, *,
                 device: torch.device, batch_size: int = 32, num_workers: int = 2) -> Iterator[EmbeddedVideo | FailedVideo]:
    """Yield every item once, embedded or failed, as soon as its last frame leaves the CNN (not in input order)."""
    loader = DataLoader(
        DecodedVideos(items, sampling, backbone.preprocess),
        batch_size=None,
        collate_fn=_keep,
        num_workers=num_workers,
        prefetch_factor=4 if num_workers else None,
        pin_memory=device.type == "cuda",
        # Its own generator: embedding must not advance the global RNG, or a training run that had to extract first
        # would draw different initial weights than the same run over a ready cache.
        generator=torch.Generator().manual_seed(0),
    )
    batcher = FixedBatcher(backbone, batch_size, device)
    for decoded in loader:
        item = items[decoded["position"]]
        if "error" in decoded:
            yield FailedVideo(item, decoded["error"])
            continue
        yield from batcher.add(EmbeddedVideo(item, decoded), decoded["images"])
    yield from batcher.flush()

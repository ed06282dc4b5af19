"""The CUDA path of FixedBatcher: pinned staging, one copy a batch, the CNN captured as a CUDA graph.

Skipped without a GPU (CI has none): run on a machine with one, e.g. `pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from vidrnn.backbones import BackboneSpec, FrozenBackbone, build_backbone
from vidrnn.embedding import EmbeddedVideo, FixedBatcher, VideoItem

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
BATCH = 8


def _videos(lengths: list[int], size: int = 224) -> list[torch.Tensor]:
    """uint8 crops ``[T,3,h,w]`` with channels-last strides, as the decoding processes send them."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (length, size, size, 3), dtype=torch.uint8, generator=generator).permute(0, 3, 1, 2)
            for length in lengths]


def _through_batcher(backbone: FrozenBackbone, videos: list[torch.Tensor]) -> tuple[list[torch.Tensor], bool]:
    """Each video's features through a CUDA batcher, and whether it ran the CNN as a CUDA graph."""
    with FixedBatcher(backbone, BATCH, CUDA) as batcher:
        pending = [EmbeddedVideo(VideoItem(Path(f"v{n}"), f"v{n}"), {}) for n in range(len(videos))]
        for video, crops in zip(pending, videos):
            batcher.add(video, crops)
        batcher.flush()
        captured = batcher.graph is not None
    return [video.features for video in pending], captured


def _eager(backbone: FrozenBackbone, videos: list[torch.Tensor]) -> list[torch.Tensor]:
    """The same frames in the same zero-padded batches, normalised and run one batch at a time, eagerly."""
    frames = torch.cat(videos)
    padded = torch.cat([frames, torch.zeros((-len(frames) % BATCH, *frames.shape[1:]), dtype=torch.uint8)])
    outputs = torch.cat([backbone(backbone.preprocess.normalize(padded[start : start + BATCH].to(CUDA))).cpu()
                         for start in range(0, len(padded), BATCH)])
    return list(outputs[: len(frames)].split([len(video) for video in videos]))


def test_graphed_batches_give_the_eager_networks_features_bit_for_bit():
    backbone = build_backbone(BackboneSpec(name="efficientnet_lite0")).to(CUDA)
    videos = _videos([5, 11, 3, 9, 2, 6])  # 36 frames: batches that split videos, eager and graphed, a padded last one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features, captured = _through_batcher(backbone, videos)
    assert captured
    for got, expected in zip(features, _eager(backbone, videos), strict=True):
        assert got.device.type == "cpu" and torch.equal(got, expected)


class _WaitsForTheHost(nn.Module):
    """A trunk that reads a value back to the CPU mid-forward: legal eagerly, impossible inside a CUDA graph."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :, ::32, ::32] * (1.0 if images.amax().item() > -1e9 else 0.0)


def test_a_network_that_cannot_be_captured_runs_eagerly_with_a_warning():
    real = build_backbone(BackboneSpec(name="efficientnet_lite0"))
    backbone = FrozenBackbone(real.spec, _WaitsForTheHost(), real.preprocess, channels=3).to(CUDA)
    videos = _videos([7, 7, 7, 7])
    with pytest.warns(UserWarning, match="cannot run as a CUDA graph"):
        features, captured = _through_batcher(backbone, videos)
    assert not captured
    assert torch.cuda.current_stream() == torch.cuda.default_stream()  # the failed capture's stream is not left current
    for got, expected in zip(features, _eager(backbone, videos), strict=True):
        assert torch.equal(got, expected)


def test_a_copy_to_the_host_lands_in_pinned_memory_once_its_event_says_so() -> None:
    from vidrnn.devices import start_copy_to_host

    values = torch.randn(64, 1280, device=CUDA)
    values.mul_(2)  # queued work the copy must follow
    host, copied = start_copy_to_host(values.t())  # not contiguous on the device
    copied.synchronize()
    assert host.is_pinned() and host.device.type == "cpu" and torch.equal(host, values.t().cpu())

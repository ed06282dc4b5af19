"""FixedBatcher: frames of consecutive videos in CNN batches of one fixed size, each video handed out once, whole."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.embedding import EmbeddedVideo, FixedBatcher, VideoItem


@pytest.fixture(scope="module")
def backbone():
    return build_backbone(BackboneSpec(input_size=64))


def _video(name: str, frames: int, seed: int, size: tuple[int, int] = (64, 64)) -> tuple[EmbeddedVideo, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    crops = torch.randint(0, 256, (frames, *size, 3), dtype=torch.uint8, generator=generator).permute(0, 3, 1, 2)
    return EmbeddedVideo(VideoItem(Path(f"{name}.avi"), key=name), decoded={}), crops  # crops as the decoding processes send them


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _alone(backbone, crops: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The video's features computed on its own, each chunk padded to the batch size with black frames, on one thread
    (as the batcher runs each batch on a CPU)."""
    chunks = []
    with _torch_threads(1):
        for first in range(0, len(crops), batch_size):
            chunk = crops[first : first + batch_size]
            padding = torch.zeros((batch_size - len(chunk), *chunk.shape[1:]), dtype=torch.uint8)
            chunks.append(backbone(backbone.preprocess.normalize(torch.cat([chunk, padding])))[: len(chunk)])
    return torch.cat(chunks)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_video_comes_back_once_whole_and_as_if_computed_alone(backbone, threads: int) -> None:
    """Whatever torch's thread count (the number of batches run at once on a CPU), the same features."""
    with _torch_threads(threads):
        batcher = FixedBatcher(backbone, batch_size=8, device=torch.device("cpu"))
    videos = [_video(name, frames, seed) for seed, (name, frames) in enumerate([("a", 5), ("b", 12), ("c", 3),
                                                                                ("d", 9), ("e", 1)])]
    returned = []
    for video, crops in videos:
        returned += batcher.add(video, crops)
        assert all(done.remaining == 0 for done in returned)
    returned += batcher.flush()
    assert sorted(video.item.key for video in returned) == ["a", "b", "c", "d", "e"]
    for video, crops in videos:
        # Frames of a video are spread over batches shared with other videos; a batch's shape never changes, so each
        # frame's features are what it gets alone (the CPU convolution is deterministic for a fixed shape).
        assert torch.equal(video.features, _alone(backbone, crops, 8))


@pytest.mark.parametrize("threads", [1, 2])
def test_frames_of_other_sizes_never_share_a_batch_and_come_back_as_if_computed_alone(threads: int) -> None:
    """Spatial maps (pooling map) are of whole frames, so landscape and portrait clips give crops of other shapes:
    the batch the first clip's frames began could not take the next one's, and the whole extraction ended. A batch
    holds frames of one size (a change of size runs the frames queued before it, padded), so each video's maps are
    what it gets alone, whichever videos came before and after it."""
    backbone = build_backbone(BackboneSpec(input_size=64, pooling="map"))
    with _torch_threads(threads):
        batcher = FixedBatcher(backbone, batch_size=8, device=torch.device("cpu"))
    sizes = {"landscape": (64, 96), "portrait": (96, 64), "square": (64, 64), "landscape2": (64, 96)}
    videos = [_video(name, frames, seed, sizes[name]) for seed, (name, frames) in
              enumerate([("landscape", 5), ("portrait", 11), ("landscape2", 3), ("square", 2), ("portrait", 4)])]
    returned = []
    for video, crops in videos:
        returned += batcher.add(video, crops)
    returned += batcher.flush()
    batcher.close()
    assert sorted(video.item.key for video in returned) == sorted(video.item.key for video, _ in videos)
    for video, crops in videos:
        assert torch.equal(video.features, _alone(backbone, crops, 8))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_batch_is_handed_out_once_as_many_later_ones_as_run_at_once_are_on_their_way(backbone, threads: int) -> None:
    """One at a time on a GPU (and on a one-thread CPU); on a CPU, as many batches as torch has threads run at once.
    Either way the CPU's work for the next batches overlaps the CNN's on the earlier ones."""
    with _torch_threads(threads):
        batcher = FixedBatcher(backbone, batch_size=4, device=torch.device("cpu"))
    videos = [_video(name, 4, seed) for seed, name in enumerate("vwxyz")]
    handed_out = [[video.item.key for video in batcher.add(*videos[n])] for n in range(4)]
    assert handed_out == ([[], ["v"], ["w"], ["x"]] if threads == 1 else [[], [], ["v"], ["w"]])
    assert batcher.add(videos[4][0], videos[4][1][:2]) == []  # 2 frames: no batch yet
    assert [video.item.key for video in batcher.flush()] == (["y", "z"] if threads == 1 else ["x", "y", "z"])
    assert batcher.flush() == []


def test_the_cnn_threads_end_with_the_batcher_and_leave_torch_as_they_found_it(backbone) -> None:
    """Each CNN thread sets torch's process-wide thread count to one when it starts; a thread that first uses torch
    after the batcher must still get the count its creator had."""
    with _torch_threads(2):
        with FixedBatcher(backbone, batch_size=4, device=torch.device("cpu")) as batcher:
            batcher.add(*_video("a", 8, 0))
            assert len(batcher.flush()) == 1 and batcher.threads is not None
        assert batcher.threads is None
        with ThreadPoolExecutor(1) as fresh:
            assert fresh.submit(torch.get_num_threads).result() == 2


def test_a_host_tensor_needs_no_copy_to_the_host() -> None:
    from vidrnn.devices import start_copy_to_host

    values = torch.arange(6.0)
    host, copied = start_copy_to_host(values)
    assert host is values and copied is None


@pytest.mark.parametrize("batch_size", [0, -3])
def test_a_batch_size_below_1_is_refused(backbone, batch_size: int) -> None:
    """0 never fills a batch: adding a video ran empty batches forever."""
    with pytest.raises(ValueError, match=f"batch size must be at least 1, got {batch_size}"):
        FixedBatcher(backbone, batch_size=batch_size, device=torch.device("cpu"))


def test_decoding_hashes_a_file_only_for_a_cache_that_records_it(backbone, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`vidrnn classify` keeps no record of its inputs: reading each file once more to hash it would be wasted."""
    from conftest import write_video
    from vidrnn.embedding import DecodedVideos
    from vidrnn.files import file_sha256
    from vidrnn.sampling import SamplingSpec

    path = tmp_path / "clip.avi"
    write_video(path, 6)
    items, sampling = [VideoItem(path, key="clip.avi")], SamplingSpec(num_segments=2, short_side=64)
    identified = DecodedVideos(items, sampling, backbone.preprocess, identify=True)(0)["source"]
    assert identified.sha256 == file_sha256(path) and identified.size == path.stat().st_size

    def never(path: Path) -> str:
        raise AssertionError("hashed")

    monkeypatch.setattr("vidrnn.files.file_sha256", never)
    assert DecodedVideos(items, sampling, backbone.preprocess)(0)["source"] is None

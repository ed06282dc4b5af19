"""The demo data generator: UCF101 and OTB formats, order pairs that only order tells apart, honest tracking boxes."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidrnn.data import synthetic
from vidrnn.data.demo_staging import ensure_generated
from vidrnn.data.synthetic import (
    CLASSES,
    DEMO_MARKER,
    ORDER_PAIRS,
    demo_generated,
    demo_index,
    ensure_classification_dataset,
    ensure_demo_data,
    make_classification_dataset,
    render_clip,
    sample_clip,
)
from vidrnn.data.synthetic_tracking import (
    TrackingScene,
    make_tracking_sequences,
    render_tracking_frame,
    sample_tracking_scene,
)
from vidrnn.data.tracking_sequences import load_sequence
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.video import probe, read_frames

GROUPS, CLIPS, FRAMES, SIZE = 3, 2, 6, (32, 48)
GROUP_IN_NAME = re.compile(r"_g(\d+)_c\d+\.avi")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classification_dataset(
        tmp_path_factory.mktemp("ucf") / "demo", groups=GROUPS, clips_per_group=CLIPS, num_frames=FRAMES, size=SIZE
    )


def _list_lines(dataset: Path, name: str) -> list[str]:
    return (dataset / "ucfTrainTestlist" / name).read_bytes().decode("ascii").split("\r\n")[:-1]


def _groups(lines: list[str]) -> set[int]:
    return {int(GROUP_IN_NAME.search(line).group(1)) for line in lines}


# --- classification: layout and formats ------------------------------------------------------------------------------


def test_videos_and_lists_follow_the_ucf101_layout(dataset: Path) -> None:
    assert sorted(path.name for path in (dataset / "UCF-101").iterdir()) == sorted(CLASSES)
    for name in CLASSES:
        expected = {f"v_{name}_g{g:02d}_c{c:02d}.avi" for g in range(1, GROUPS + 1) for c in range(1, CLIPS + 1)}
        assert {path.name for path in (dataset / "UCF-101" / name).iterdir()} == expected
    lists = {path.name for path in (dataset / "ucfTrainTestlist").iterdir()}
    assert lists == {"classInd.txt"} | {f"{kind}list0{fold}.txt" for kind in ("train", "test") for fold in (1, 2, 3)}
    assert _list_lines(dataset, "classInd.txt") == [f"{i} {name}" for i, name in enumerate(CLASSES, 1)]


def test_every_video_decodes_to_the_requested_frames_and_size(dataset: Path) -> None:
    for video in (dataset / "UCF-101").rglob("*.avi"):
        info = probe(video, count=True)
        assert (info.num_frames, info.height, info.width, info.fps) == (FRAMES, *SIZE, 25.0)


def test_lists_use_crlf_only(dataset: Path) -> None:
    for path in (dataset / "ucfTrainTestlist").iterdir():
        data = path.read_bytes()
        assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")


@pytest.mark.parametrize("fold", [1, 2, 3])
def test_each_fold_splits_by_group_and_covers_every_clip_once(dataset: Path, fold: int) -> None:
    train = _list_lines(dataset, f"trainlist0{fold}.txt")
    test = _list_lines(dataset, f"testlist0{fold}.txt")
    assert _groups(train).isdisjoint(_groups(test)) and _groups(test)
    listed = sorted([line.split(" ")[0] for line in train] + test)
    on_disk = sorted(path.relative_to(dataset / "UCF-101").as_posix() for path in dataset.rglob("*.avi"))
    assert listed == on_disk
    class_ids = {name: i for i, name in enumerate(CLASSES, 1)}
    assert all(int(line.split(" ")[1]) == class_ids[line.split("/")[0]] for line in train)


def test_the_folds_test_different_groups(dataset: Path) -> None:
    tested = [_groups(_list_lines(dataset, f"testlist0{fold}.txt")) for fold in (1, 2, 3)]
    assert set().union(*tested) == set(range(1, GROUPS + 1)) and sum(map(len, tested)) == GROUPS


def test_the_ucf101_loader_reads_it_with_every_class_on_both_sides_of_fold_1(dataset: Path) -> None:
    index = ucf101_index(dataset, fold=1)
    assert index.classes == list(CLASSES) and index.missing == []
    for split in ("train", "test"):
        assert {record.label for record in index.split(split)} == set(CLASSES)


def test_a_class_subset_keeps_canonical_ids(tmp_path: Path) -> None:
    root = make_classification_dataset(
        tmp_path, classes=["Shrink", "Grow"], groups=3, clips_per_group=1, num_frames=2, size=SIZE
    )
    assert _list_lines(root, "classInd.txt") == ["1 Grow", "2 Shrink"]
    with pytest.raises(ValueError, match="unknown classes"):
        make_classification_dataset(tmp_path, classes=["Jump"])


# --- classification: determinism --------------------------------------------------------------------------------------


def _small(out_dir: Path, seed: int) -> Path:
    return make_classification_dataset(
        out_dir, classes=["FadeIn"], groups=3, clips_per_group=1, num_frames=4, size=SIZE, seed=seed
    )


def test_same_seed_gives_identical_files_and_another_seed_other_frames(tmp_path: Path) -> None:
    first, again, other = _small(tmp_path / "a", 7), _small(tmp_path / "b", 7), _small(tmp_path / "c", 8)
    for video in sorted(first.rglob("*.avi")):
        relative = video.relative_to(first)
        assert video.read_bytes() == (again / relative).read_bytes()
        frames = read_frames(video, range(4))
        assert np.array_equal(frames, read_frames(again / relative, range(4)))
        assert not np.array_equal(frames, read_frames(other / relative, range(4)))


# --- classification: order pairs -------------------------------------------------------------------------------------


def _pair_clips(forward: str, backward: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    setting = np.random.default_rng(seed).uniform(size=(40, 60, 3)).astype(np.float32)
    clips = [sample_clip(np.random.default_rng([seed, 1]), name, setting, SIZE, 8) for name in (forward, backward)]
    return render_clip(clips[0]), render_clip(clips[1])


@pytest.mark.parametrize(("forward", "backward"), ORDER_PAIRS)
def test_backward_class_is_the_forward_clip_reversed_frame_for_frame(forward: str, backward: str) -> None:
    forward_frames, backward_frames = _pair_clips(forward, backward, seed=3)
    assert forward_frames.shape == (8, *SIZE, 3) and forward_frames.dtype == np.uint8
    assert np.array_equal(backward_frames, forward_frames[::-1])


@pytest.mark.parametrize(("forward", "backward"), ORDER_PAIRS)
def test_a_pair_has_the_same_mean_frame_but_changes_over_time(forward: str, backward: str) -> None:
    forward_frames, backward_frames = _pair_clips(forward, backward, seed=4)
    assert np.array_equal(forward_frames.mean(axis=0), backward_frames.mean(axis=0))
    first, last = forward_frames[0].astype(float), forward_frames[-1].astype(float)
    assert np.abs(first - last).mean() > 5.0


# --- tracking --------------------------------------------------------------------------------------------------------

TRACK_SIZE = (60, 80)


@pytest.fixture(scope="module", params=[0, 1, 2])
def scene(request: pytest.FixtureRequest) -> TrackingScene:
    return sample_tracking_scene(np.random.default_rng(request.param), num_frames=24, size=TRACK_SIZE)


def test_ground_truth_lies_inside_the_frame(scene: TrackingScene) -> None:
    x, y, w, h = scene.ground_truth().T
    height, width = TRACK_SIZE
    assert (x >= 0).all() and (y >= 0).all() and (w >= 1).all() and (h >= 1).all()
    assert (x + w <= width).all() and (y + h <= height).all()


def test_target_moves(scene: TrackingScene) -> None:
    x, y, w, h = scene.target.boxes.T.astype(float)
    centres = np.stack([x + w / 2, y + h / 2], axis=1)
    assert np.linalg.norm(centres - centres[0], axis=1).max() > 5.0


def test_target_size_changes_at_a_real_pace() -> None:
    """Over ten seconds some targets swell or shrink clearly and others hardly at all, and frame to frame none changes
    by much more than 1 %, as real ones do."""
    def log_sizes(seed: int, num_frames: int) -> np.ndarray:
        boxes = sample_tracking_scene(np.random.default_rng(seed), num_frames, size=(240, 320)).target.boxes
        return 0.5 * np.log(boxes[:, 2] * boxes[:, 3].astype(float))

    ranges = np.array([np.exp(np.ptp(log_sizes(seed, 300))) for seed in range(8)])
    assert (ranges > 1.3).any() and (ranges < 1.2).any(), ranges
    for seed in range(3):
        assert np.abs(np.diff(log_sizes(seed, 60))).mean() < 0.012  # a short clip does not squeeze a whole swing in


def _overlaps(box: np.ndarray, other: np.ndarray) -> bool:
    (x, y, w, h), (other_x, other_y, other_w, other_h) = box, other
    return x < other_x + other_w and other_x < x + w and y < other_y + other_h and other_y < y + h


@pytest.mark.parametrize("num_frames", [1, 2, 3])
def test_the_shortest_scenes_are_drawn_too(num_frames: int) -> None:
    scene = sample_tracking_scene(np.random.default_rng(0), num_frames=num_frames, size=TRACK_SIZE)
    assert scene.occluder.boxes.shape == (num_frames, 4)


def test_target_is_drawn_exactly_in_its_ground_truth_box(scene: TrackingScene) -> None:
    occluded = 0
    offstage = replace(scene, target=replace(scene.target, boxes=scene.target.boxes + [10**6, 0, 0, 0]))  # not drawn
    for index, (x, y, w, h) in enumerate(scene.ground_truth()):
        without_target = render_tracking_frame(offstage, index)
        changed = (render_tracking_frame(scene, index) != without_target).any(axis=2)
        inside = np.zeros_like(changed)
        inside[y : y + h, x : x + w] = True
        assert not changed[~inside].any(), f"frame {index}: target pixels outside its box"
        if _overlaps(scene.target.boxes[index], scene.occluder.boxes[index]):
            occluded += 1
        else:
            assert changed[inside].mean() > 0.5, f"frame {index}: box mostly shows no target"
    assert occluded >= 1, "the occluder never passes over the target"
    assert not _overlaps(scene.target.boxes[0], scene.occluder.boxes[0]), "the first frame (the template) is occluded"


def test_sequences_are_written_in_otb_format(tmp_path: Path) -> None:
    folders = make_tracking_sequences(tmp_path, num_sequences=2, num_frames=8, size=TRACK_SIZE, seed=5)
    assert [folder.name for folder in folders] == ["Synth01", "Synth02"]
    height, width = TRACK_SIZE
    for folder in folders:
        images = sorted((folder / "img").iterdir())
        assert [image.name for image in images] == [f"{i:04d}.jpg" for i in range(1, 9)]
        assert cv2.imread(str(images[0])).shape == (height, width, 3)
        lines = (folder / "groundtruth_rect.txt").read_text().splitlines()
        assert len(lines) == len(images) and all(re.fullmatch(r"\d+,\d+,\d+,\d+", line) for line in lines)
        x, y, w, h = np.array([line.split(",") for line in lines], dtype=int).T
        assert (x >= 1).all() and (y >= 1).all() and (x + w - 1 <= width).all() and (y + h - 1 <= height).all()
        sequence = load_sequence(folder)
        assert sequence.num_frames == 8 and np.array_equal(sequence.boxes, np.stack([x - 1, y - 1, w, h], axis=1))


# --- ensure_demo_data ------------------------------------------------------------------------------------------------


def _stamps(root: Path) -> dict[Path, int]:
    """Every path under ``root`` with its modification time: unchanged stamps mean nothing was rewritten."""
    return {path: path.stat().st_mtime_ns for path in root.rglob("*")}


@pytest.fixture(scope="module")
def recovered_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default demo, generated where nothing was."""
    root = tmp_path_factory.mktemp("cache") / "demo"
    assert ensure_demo_data(root) == root
    return root


def test_ensure_demo_data_writes_the_default_demo(recovered_demo: Path) -> None:
    assert (recovered_demo / DEMO_MARKER).is_file()
    assert probe(recovered_demo / "UCF-101" / "Grow" / "v_Grow_g01_c01.avi", count=True).num_frames == 16
    assert len(list(recovered_demo.rglob("*.avi"))) == len(CLASSES) * 6 * 8  # the default: 6 groups x 8 clips
    assert ucf101_index(recovered_demo).classes == list(CLASSES)
    assert [path.name for path in recovered_demo.parent.iterdir()] == ["demo"], "staging directory left behind"


def test_an_interrupted_generation_leaves_nothing_and_is_redone(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A generation cut short (here: the disk fills) leaves neither the folder nor its staging; the next one writes
    it whole."""
    def fills_the_disk(out_dir: Path, **settings: object) -> None:
        (Path(out_dir) / "UCF-101").mkdir()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(synthetic, "make_classification_dataset", fills_the_disk)
    with pytest.raises(OSError, match="No space left"):
        ensure_classification_dataset(tmp_path / "demo", groups=3, clips_per_group=1, num_frames=2)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    ensure_classification_dataset(tmp_path / "demo", groups=3, clips_per_group=1, num_frames=2)
    assert ucf101_index(tmp_path / "demo").counts() == {"train": 12, "test": 6}
    assert [path.name for path in tmp_path.iterdir()] == ["demo"]


@pytest.mark.parametrize("other_seed", [None, 5], ids=["the same generation", "another seed's"])
def test_a_generation_another_process_finished_first_is_taken_or_refused_never_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other_seed: int | None) -> None:
    """Two processes generating one folder (the first process of each node of a multi-node fit, on a shared file
    system): the one that finished second ended in "Directory not empty" from removing the folder it had found
    empty. The same generation there is its own; another is refused as it would have been had it been there first."""
    make = synthetic.make_classification_dataset
    settings = {"groups": 3, "clips_per_group": 1, "num_frames": 2}

    def another_process_finishes_meanwhile(out_dir: Path, **given: object) -> None:
        monkeypatch.setattr(synthetic, "make_classification_dataset", make)
        seed = given["seed"] if other_seed is None else other_seed
        ensure_classification_dataset(tmp_path / "demo", **{**settings, "seed": seed})
        make(out_dir, **given)

    (tmp_path / "demo").mkdir()  # an empty folder, as a user may make first
    monkeypatch.setattr(synthetic, "make_classification_dataset", another_process_finishes_meanwhile)
    if other_seed is None:
        assert ensure_classification_dataset(tmp_path / "demo", **settings) == tmp_path / "demo"
    else:
        with pytest.raises(ValueError, match="holds the demo videos generated with seed 5"):
            ensure_classification_dataset(tmp_path / "demo", **settings)
    assert [path.name for path in tmp_path.iterdir()] == ["demo"], "staging directory left behind"
    assert ucf101_index(tmp_path / "demo").counts() == {"train": 12, "test": 6}


#: A generation that runs until it is killed, in a process of its own: ``python -c`` it with the output folder and
#: the host name it is to believe it runs on ("": the real one).
_ENDLESS_GENERATION = """
import socket, sys, time
from pathlib import Path
from vidrnn.data.demo_staging import ensure_generated

if sys.argv[2]:
    socket.gethostname = lambda: sys.argv[2]

def generate(staging):
    (staging / "started").touch()
    time.sleep(600)

ensure_generated(Path(sys.argv[1]), '{"generator": "endless", "seed": 0}', generate)
"""


def _generating(out_dir: Path, host: str = "") -> tuple[subprocess.Popen, Path]:
    """A process generating ``out_dir``, and its staging folder, once its generator runs."""
    process = subprocess.Popen([sys.executable, "-c", _ENDLESS_GENERATION, str(out_dir), host])
    deadline = time.monotonic() + 120
    while not (started := list(out_dir.parent.glob(f".{out_dir.name}-*/started"))):
        assert process.poll() is None and time.monotonic() < deadline, "the generation did not start"
        time.sleep(0.05)
    return process, started[0].parent


def _killed(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_a_generation_killed_midway_leaves_a_staging_folder_the_next_one_removes_saying_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A generation killed with SIGKILL (or a power cut) left its hidden staging folder beside the output forever."""
    process, staging = _generating(tmp_path / "demo")
    _killed(process)
    assert staging.is_dir()
    with caplog.at_level("WARNING"):
        ensure_classification_dataset(tmp_path / "demo", groups=3, clips_per_group=1, num_frames=2)
    assert [path.name for path in tmp_path.iterdir()] == ["demo"], "the dead generation's staging folder is left"
    assert sorted(path.name for path in (tmp_path / "demo").iterdir()) == ["UCF-101", "ucfTrainTestlist", DEMO_MARKER]
    said = [record.getMessage() for record in caplog.records if str(staging) in record.getMessage()]
    assert said == [f"removed {staging}, the staging folder of a generation of {tmp_path / 'demo'} by process "
                    f"{process.pid} on this host, which ended before it finished"]


def test_a_generation_killed_after_another_completed_the_output_leaves_a_staging_folder_the_next_call_removes(
        tmp_path: Path) -> None:
    """A generation killed while another generation of the same folder completed left its staging folder forever:
    every later call found the output complete and returned before it looked for abandoned staging folders."""
    process, staging = _generating(tmp_path / "demo")
    try:
        ensure_generated(tmp_path / "demo", '{"generator": "endless", "seed": 0}', lambda out: (out / "done").touch())
    finally:
        _killed(process)
    assert staging.is_dir()
    ensure_generated(tmp_path / "demo", '{"generator": "endless", "seed": 0}', lambda out: pytest.fail("regenerated"))
    assert [path.name for path in tmp_path.iterdir()] == ["demo"], "the dead generation's staging folder is left"


def test_a_complete_output_is_read_where_its_parent_cannot_be_listed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Looking for abandoned staging folders beside a complete output must not cost reading it: a parent folder
    that may be passed through but not listed (mode 0711) holds demos others read."""
    marker = '{"generator": "endless", "seed": 0}'
    ensure_generated(tmp_path / "demo", marker, lambda out: (out / "done").touch())
    listed = Path.iterdir

    def unlistable(folder: Path):
        if folder == tmp_path:
            raise PermissionError(13, "Permission denied", str(folder))
        return listed(folder)

    monkeypatch.setattr(Path, "iterdir", unlistable)
    assert ensure_generated(tmp_path / "demo", marker, lambda out: pytest.fail("regenerated")) == tmp_path / "demo"


@pytest.mark.parametrize("host", ["", "another-node"], ids=["alive on this host", "killed on another host"])
def test_a_staging_folder_whose_generation_may_still_run_is_left_as_it_is(tmp_path: Path, host: str) -> None:
    """Only a generation that has provably ended is cleaned up after: one still running, here or on another node of
    a shared file system (whose process this host cannot see), keeps its staging folder."""
    process, staging = _generating(tmp_path / "demo", host)
    try:
        if host:
            _killed(process)
        ensure_classification_dataset(tmp_path / "demo", groups=3, clips_per_group=1, num_frames=2)
        assert (staging / "started").is_file()
    finally:
        _killed(process)
    assert sorted(path.name for path in tmp_path.iterdir()) == [staging.name, "demo"]


def test_ensure_demo_data_does_not_rewrite_a_complete_dataset(recovered_demo: Path) -> None:
    before = _stamps(recovered_demo)
    assert ensure_demo_data(recovered_demo) == recovered_demo
    assert _stamps(recovered_demo) == before


def test_ensure_demo_data_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        ensure_demo_data(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_damaged_marker_is_named_as_damaged_not_as_missing(tmp_path: Path) -> None:
    """A marker that is no JSON object was said to be absent: "holds ..., vidrnn-demo.json but no vidrnn-demo.json"."""
    root = tmp_path / "demo"
    root.mkdir()
    (root / DEMO_MARKER).write_text("[]")
    with pytest.raises(FileExistsError, match=re.escape(
            f"{root} holds {DEMO_MARKER}, whose record of what made the folder cannot be read")):
        ensure_demo_data(root)
    assert (root / DEMO_MARKER).read_text() == "[]"


def test_a_marker_that_is_a_folder_is_refused_naming_it_and_left_as_it_is(tmp_path: Path) -> None:
    """A folder of the marker's name ended every command that looked for the demo in an IsADirectoryError
    traceback."""
    root = tmp_path / "demo"
    (root / DEMO_MARKER / "notes").mkdir(parents=True)
    for refused in (lambda: ensure_demo_data(root), lambda: demo_generated(root, setting="data.root"),
                    lambda: ensure_classification_dataset(root, groups=3, clips_per_group=1, num_frames=2)):
        with pytest.raises(FileExistsError, match=re.escape(
                f"{root} holds {DEMO_MARKER}, where {root / DEMO_MARKER} is a folder, not the marker file a finished "
                "generation writes; it is not replaced: move it away")):
            refused()
    assert [path.name for path in (root / DEMO_MARKER).iterdir()] == ["notes"]
    assert [path.name for path in tmp_path.iterdir()] == ["demo"]


def test_demo_data_without_a_marker_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    """It was taken for an interrupted generation and deleted: the clips vidrnn synth wrote (no marker) were replaced
    by the demo without a word. A generation is staged beside its folder, so only the marker says whose it is."""
    root = tmp_path / "demo"
    clip = root / "UCF-101" / "Grow" / "v_Grow_g01_c01.avi"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"RIFF")
    for refused in (lambda: ensure_demo_data(root), lambda: demo_generated(root, setting="data.root")):
        with pytest.raises(FileExistsError, match=re.escape(
                f"{root} holds UCF-101 but no {DEMO_MARKER}, the marker a finished generation writes")):
            refused()
    assert clip.read_bytes() == b"RIFF" and [path.name for path in tmp_path.iterdir()] == ["demo"]


def test_generated_data_is_marked_with_its_settings_and_refused_where_others_are_asked_for(tmp_path: Path) -> None:
    """vidrnn synth's data of other settings, or another seed, must not be taken for the demo, nor replaced by it."""
    root = ensure_classification_dataset(tmp_path / "synth", seed=1, groups=3, clips_per_group=1, num_frames=2)
    before = _stamps(root)
    assert json.loads((root / DEMO_MARKER).read_text()) == {
        "generator": "vidrnn.data.synthetic.make_classification_dataset", "seed": 1, "groups": 3,
        "clips_per_group": 1, "num_frames": 2}
    assert ensure_classification_dataset(root, seed=1, groups=3, clips_per_group=1, num_frames=2) == root
    made = "seed 1, groups 3, clips_per_group 1, num_frames 2"
    for refused, asked in ((lambda: ensure_demo_data(root, seed=1), "seed 1 with the default settings"),
                           (lambda: demo_generated(root, seed=0, setting="data.root"), "seed 0 with the default settings"),
                           (lambda: ensure_classification_dataset(root, seed=2, groups=3, clips_per_group=1,
                                                                  num_frames=2), "seed 2"),
                           (lambda: ensure_classification_dataset(root, seed=1, groups=4, clips_per_group=1,
                                                                  num_frames=2), "seed 1, groups 4")):
        with pytest.raises(ValueError, match=re.escape(f"{root} holds the demo videos generated with {made}; {asked} "
                                                       "generates other videos")):
            refused()
    assert _stamps(root) == before


def test_the_default_settings_generate_the_demo(recovered_demo: Path) -> None:
    """What vidrnn synth writes with its defaults is the demo a fit asks for, and the demo is what it would write."""
    before = _stamps(recovered_demo)
    assert ensure_classification_dataset(recovered_demo, seed=0, groups=6, clips_per_group=8,
                                         num_frames=16) == recovered_demo
    assert _stamps(recovered_demo) == before


def test_another_seeds_demo_is_refused_and_left_as_it_is(recovered_demo: Path) -> None:
    """data.seed seeded the generator, and the demo of another seed was generated over the one a cache and models
    were made from, under the same names, by any command — also one refused later."""
    before = _stamps(recovered_demo)
    for refused in (lambda: ensure_demo_data(recovered_demo, seed=2),
                    lambda: demo_generated(recovered_demo, seed=2, setting="data.root")):
        with pytest.raises(ValueError, match=re.escape(f"{recovered_demo} holds the demo videos generated with seed 0; "
                                                       "seed 2 generates other videos")):
            refused()
    with pytest.raises(ValueError, match=re.escape(f"a data.root of its own, such as {recovered_demo}-seed2, or use "
                                                   "seed 0 here")):
        demo_generated(recovered_demo, seed=2, setting="data.root")
    assert _stamps(recovered_demo) == before
    assert json.loads((recovered_demo / DEMO_MARKER).read_text())["seed"] == 0


def test_the_generated_demo_is_as_readable_as_the_umask_lets_any_folder_be(recovered_demo: Path) -> None:
    """It was private (0700, tempfile.mkdtemp's staging folder renamed into place): other users and containers could
    not read it."""
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(recovered_demo.stat().st_mode) == 0o777 & ~umask


@pytest.mark.parametrize("fold", [1, 2, 3])
def test_the_demos_index_is_known_before_it_is_generated(recovered_demo: Path, tmp_path: Path, fold: int) -> None:
    """Commands check their split before anything is generated: the index they read then is the one the generated
    demo gives."""
    planned, read = demo_index(tmp_path / "demo", fold), ucf101_index(recovered_demo, fold=fold)
    assert not (tmp_path / "demo").exists()
    assert (planned.root, planned.classes, planned.split_rule) == (tmp_path / "demo" / "UCF-101", read.classes,
                                                                  read.split_rule)
    assert ([(r.path.relative_to(planned.root), r.label, r.group, r.split) for r in planned.records]
            == [(r.path.relative_to(read.root), r.label, r.group, r.split) for r in read.records])


def test_photo_targets_are_rounded_and_turn_towards_another_look() -> None:
    """A photo target leaves its box's corners to the background and its appearance drifts, as real objects do."""
    scenes = [sample_tracking_scene(np.random.default_rng(seed), 120, size=(240, 320)) for seed in range(6)]
    turning = [scene.target for scene in scenes if scene.target.later is not None]
    assert turning, "no photo target among six scenes"
    for target in turning:
        alpha = target.texture[..., 3]
        assert alpha[0, 0] == 0 and alpha[-1, -1] == 0 and alpha[alpha.shape[0] // 2, alpha.shape[1] // 2] == 1
        assert target.turn[0] == 0 and target.turn.max() > 0
        most = int(target.turn.argmax())
        assert np.abs(target.texture_at(most) - target.texture_at(0)).mean() > 0
        assert np.array_equal(target.texture_at(0), target.texture)

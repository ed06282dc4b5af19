"""Folder index: what counts as a video and a class, how groups are found, and that the split is honest and seeded."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from lightning.pytorch.utilities import rank_zero_only

from conftest import deny_listing, real_data, write_video
from vidrnn.data.folders import folder_index, unlabeled_index
from vidrnn.data.records import DatasetIndex
from vidrnn.video import read_frames



def _touch(root: Path, *relative: str) -> None:
    for name in relative:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def _ungrouped(root: Path, classes: dict[str, int]) -> None:
    for label, count in classes.items():
        _touch(root, *(f"{label}/clip{number:02d}.mp4" for number in range(count)))


def _test_files(index: DatasetIndex) -> list[str]:
    return [record.path.name for record in index.split("test")]


def _assert_groups_disjoint(index: DatasetIndex) -> None:
    train_groups = {record.group for record in index.split("train")}
    test_groups = {record.group for record in index.split("test")}
    assert not train_groups & test_groups


def test_videos_are_found_at_any_depth_with_any_case_and_hidden_entries_are_ignored(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "cat/a.MP4",
        "cat/deep/er/b.avi",
        "cat/notes.txt",
        "cat/.hidden.mp4",
        "cat/.cache/c.mp4",
        "bird/d.mkv",
        ".trash/old/e.mp4",
    )

    index = folder_index(tmp_path)

    assert index.classes == ["bird", "cat"]
    assert sorted(str(record.path.relative_to(tmp_path)) for record in index.records) == [
        "bird/d.mkv",
        "cat/a.MP4",
        "cat/deep/er/b.avi",
    ]
    assert {record.path.name: record.label for record in index.records}["b.avi"] == "cat"


def test_camera_and_legacy_extensions_that_opencv_decodes_are_videos(tmp_path: Path) -> None:
    """Cameras and old encoders name their files .qt, .f4v, .divx, .xvid, .mod, ...; FFmpeg reads them by their
    content, but the index used to pass them over without a word."""
    source = write_video(tmp_path / "source.avi", 6)
    names = ["camera.qt", "flash.f4v", "old.divx", "old.xvid", "raw.mp4v", "phone.3g2", "phone.3gpp", "film.mpe",
             "camcorder.mod", "camcorder.tod", "motion.mjpeg", "motion.mjpg"]
    for name in names:
        (tmp_path / "ds" / "cat").mkdir(parents=True, exist_ok=True)
        shutil.copy(source, tmp_path / "ds" / "cat" / name)
    _touch(tmp_path / "ds", "dog/a.avi")

    index = folder_index(tmp_path / "ds")

    assert sorted(record.path.name for record in index.records if record.label == "cat") == sorted(names)
    for record in index.records:
        if record.label == "cat":
            assert len(read_frames(record.path, [0, 5])) == 2


def test_files_passed_over_for_their_extension_are_named_once_for_the_dataset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Obvious non-videos (images, text, tables, subtitles, audio) and hidden files are passed over quietly; any other
    extension may be a video under a name the index does not read, and so may a folder of images (frames)."""
    _touch(tmp_path, "cat/a.avi", "cat/b.h265", "cat/notes.txt", "cat/thumb.jpg", "cat/labels.json", "cat/list.csv",
           "cat/clip.srt", "cat/sound.wav", "cat/.DS_Store", "cat/README", "dog/c.avi", "dog/d.rmvb", "dog/e.rmvb",
           *(f"dog/frames/{n:04d}.jpg" for n in range(3)))

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        index = folder_index(tmp_path)

    assert len(index.records) == 2
    warned = [record.getMessage() for record in caplog.records if "passed over" in record.getMessage()]
    assert len(warned) == 1
    assert "3 files" in warned[0] and "cat/b.h265" in warned[0] and ".rmvb 2" in warned[0]
    assert "1 folder of images only" in warned[0] and "dog/frames" in warned[0]
    for quiet in ("notes.txt", "thumb.jpg", "labels.json", "list.csv", "clip.srt", "sound.wav", "DS_Store", "README"):
        assert quiet not in warned[0]


def test_gifs_in_class_folders_are_named_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An animated GIF is a clip (TGIF-style datasets) and a still one a thumbnail that must not become a training or
    test clip, and the extension tells them apart no better than a tracking sequence's preview; they were dropped
    without a word: they are named, for the user to convert, and the split of the videos stays as it was."""
    _touch(tmp_path, *(f"{label}/v_{label}_g{group:02d}_c01.avi" for label in ("jump", "run") for group in range(1, 5)))
    before = folder_index(tmp_path, seed=0)
    _touch(tmp_path, "jump/reaction.gif", "run/preview.GIF")

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        index = folder_index(tmp_path, seed=0)

    assert [(record.path, record.split) for record in index.records] == [
        (record.path, record.split) for record in before.records]
    warned, = [record.getMessage() for record in caplog.records if "passed over" in record.getMessage()]
    assert "2 files" in warned and ".gif 2" in warned and "convert them" in warned


def test_linked_session_folders_are_followed_and_link_cycles_walked_once(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    _touch(recordings, *(f"session{s}/take{t}.mov" for s in range(3) for t in range(2)))
    (tmp_path / "ds" / "dog").mkdir(parents=True)
    for session in range(3):
        (tmp_path / "ds" / "dog" / f"session{session}").symlink_to(recordings / f"session{session}")
    (recordings / "session0" / "back").symlink_to(tmp_path / "ds" / "dog")  # a cycle through the class folder
    (recordings / "session1" / "again").symlink_to(recordings / "session1")  # a folder linked into itself

    index = folder_index(tmp_path / "ds", seed=0)

    assert sorted(record.path.relative_to(index.root).as_posix() for record in index.records) == [
        f"dog/session{s}/take{t}.mov" for s in range(3) for t in range(2)
    ]
    assert {record.group for record in index.records} == {"dog/session0", "dog/session1", "dog/session2"}
    _assert_groups_disjoint(index)


def test_class_and_session_folders_that_cannot_be_read_refuse_the_index_naming_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A class folder linked to an unmounted disk or to itself, or one this user may not list, vanished and the model
    trained on the others (a folder of mode 000 was said to hold no video); so did such a session folder inside a
    class, without a word. A silently smaller dataset is refused, every such path named with why."""
    _ungrouped(tmp_path / "ds", {"alpha": 3, "beta": 3, "denied": 3})
    root = tmp_path / "ds"
    (root / "gamma").symlink_to(tmp_path / "unmounted" / "gamma")
    (root / "delta").symlink_to("delta")
    (root / "beta" / "sess9").symlink_to(tmp_path / "nowhere")
    (root / "alpha" / "sess2").mkdir()
    (root / "alpha" / "looplink").symlink_to(".")  # a cycle back to a folder walked: ended quietly, as before
    deny_listing(monkeypatch, root / "denied", root / "alpha" / "sess2")

    with pytest.raises(ValueError) as refused:
        folder_index(root)

    message = str(refused.value)
    assert message.startswith(f"{root}: 5 folders or links cannot be read")
    assert f"{root / 'gamma'}: is a symbolic link to {tmp_path / 'unmounted' / 'gamma'}, which does not exist" in message
    assert f"{root / 'delta'}: is a symbolic link in a loop" in message
    assert f"{root / 'beta' / 'sess9'}: is a symbolic link to {tmp_path / 'nowhere'}" in message
    assert f"{root / 'denied'}: cannot be listed: permission denied" in message
    assert f"{root / 'alpha' / 'sess2'}: cannot be listed: permission denied" in message
    assert "looplink" not in message and "holds no video" not in message
    assert "mount" in message and "remove the link" in message


def test_an_unlabeled_index_refuses_a_folder_it_cannot_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path, "clips/a.mp4", "clips/b.mp4", "clips/private/c.mp4")
    deny_listing(monkeypatch, tmp_path / "clips" / "private")
    with pytest.raises(ValueError, match="private: cannot be listed: permission denied"):
        unlabeled_index(tmp_path / "clips")


def test_ucf_style_names_split_by_whole_groups_in_every_class(tmp_path: Path) -> None:
    for label in ("Run", "Walk"):
        _touch(tmp_path, *(f"{label}/v_{label}_g0{group}_c{clip}.avi" for group in range(1, 8) for clip in (1, 2, 3)))

    index = folder_index(tmp_path, test_fraction=0.3, seed=0)

    assert {record.group for record in index.records if record.label == "Run"} == {f"Run/g{n:02d}" for n in range(1, 8)}
    _assert_groups_disjoint(index)
    for label in index.classes:
        tested = {record.group for record in index.split("test") if record.label == label}
        assert len(tested) == 2  # 2 of 7 groups is 6 of 21 clips, the closest whole-group share to 0.3
    assert "whole groups per class" in index.split_rule
    assert "test_fraction=0.3" in index.split_rule and "seed=0" in index.split_rule


@pytest.mark.parametrize("seed", range(3))
def test_the_test_fraction_is_a_share_of_clips_taken_as_whole_groups(tmp_path: Path, seed: int) -> None:
    # One recording of 20 clips and 4 single clips: 30 % of 24 clips is 7.2, and the closest whole groups reach is the
    # 4 single clips (4 of 5 groups), never the 20-clip recording; a share of groups would test 1 or 2 of them.
    _touch(tmp_path, *(f"dog/session/take{t:02d}.mov" for t in range(20)), *(f"dog/loose{n}.mov" for n in range(4)))

    index = folder_index(tmp_path, test_fraction=0.3, seed=seed)

    assert sorted(_test_files(index)) == [f"loose{n}.mov" for n in range(4)]


def test_sub_folders_are_groups_when_file_names_carry_none(tmp_path: Path) -> None:
    _touch(tmp_path, *(f"dog/session{s}/take{t}.mov" for s in range(4) for t in range(3)), "dog/loose.mov")

    index = folder_index(tmp_path, test_fraction=0.25, seed=1)

    groups = {record.path.name if record.group is None else record.group for record in index.records}
    assert groups == {"dog/session0", "dog/session1", "dog/session2", "dog/session3", "loose.mov"}
    _assert_groups_disjoint(index)
    assert 1 <= len(index.split("test")) <= 4


def test_without_groups_each_class_is_split_at_random_by_the_fraction(tmp_path: Path) -> None:
    _ungrouped(tmp_path, {"a": 10, "b": 20})

    index = folder_index(tmp_path, test_fraction=0.3, seed=0)

    assert all(record.group is None for record in index.records)
    assert sum(record.label == "a" for record in index.split("test")) == 3
    assert sum(record.label == "b" for record in index.split("test")) == 6
    assert "at random" in index.split_rule and "seed=0" in index.split_rule


def test_the_same_seed_gives_the_same_split(tmp_path: Path) -> None:
    _ungrouped(tmp_path, {"a": 12, "b": 12})

    assert folder_index(tmp_path, seed=7).records == folder_index(tmp_path, seed=7).records


def test_a_different_seed_gives_a_different_split(tmp_path: Path) -> None:
    _ungrouped(tmp_path, {"a": 12, "b": 12})

    assert _test_files(folder_index(tmp_path, seed=0)) != _test_files(folder_index(tmp_path, seed=1))


def test_adding_a_class_leaves_the_split_of_the_others_unchanged(tmp_path: Path) -> None:
    _ungrouped(tmp_path, {"a": 12})
    before = folder_index(tmp_path, seed=3).split("test")
    _ungrouped(tmp_path, {"b": 12})

    after = folder_index(tmp_path, seed=3).split("test")

    assert [record for record in after if record.label == "a"] == before


@pytest.mark.parametrize("seed", range(3))
def test_the_split_is_the_same_whatever_spelling_of_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # A fit given a relative root and a test given the absolute one must hold out the same clips, or they leak.
    _touch(tmp_path / "ds", *(f"dog/session{s}/take{t}.mov" for s in range(3) for t in range(2)))
    _touch(tmp_path / "ds", *(f"dog/loose{n}.mov" for n in range(4)))
    monkeypatch.chdir(tmp_path)

    relative, absolute = (folder_index(root, seed=seed) for root in ("ds", tmp_path / "ds"))

    def held_out(index: DatasetIndex) -> list[str]:
        return [record.path.relative_to(index.root).as_posix() for record in index.split("test")]

    assert held_out(relative) == held_out(absolute)


@pytest.mark.parametrize(
    ("clips_per_group", "fraction"),
    [(10, 0.1), (1, 0.9)],
    ids=["groups larger than the target are still tested", "the last group is kept for training"],
)
def test_a_class_with_two_groups_gets_one_on_each_side(tmp_path: Path, clips_per_group: int, fraction: float) -> None:
    _touch(tmp_path, *(f"a/v_a_g0{group}_c{clip:02d}.avi" for group in (1, 2) for clip in range(clips_per_group)))

    index = folder_index(tmp_path, test_fraction=fraction)

    assert len({record.group for record in index.split("train")}) == 1
    assert len({record.group for record in index.split("test")}) == 1


def test_a_class_with_one_group_stays_in_train_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _touch(tmp_path, "solo/v_solo_g01_c01.avi", "solo/v_solo_g01_c02.avi")
    _ungrouped(tmp_path, {"many": 5})

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        index = folder_index(tmp_path)

    assert {record.split for record in index.records if record.label == "solo"} == {"train"}
    assert "'solo'" in caplog.text


def test_a_class_folder_without_videos_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _ungrouped(tmp_path, {"a": 3, "b": 3})
    _touch(tmp_path, "thumbnails/a.jpg")

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        index = folder_index(tmp_path)

    assert index.classes == ["a", "b"]
    assert str(tmp_path / "thumbnails") in caplog.text


def test_train_and_test_folders_are_used_as_given(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _touch(tmp_path, "train/cat/v_cat_g01_c01.mp4", "train/dog/x.mp4", "test/cat/v_cat_g01_c02.mp4", "test/dog/y.mp4")

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        index = folder_index(tmp_path, seed=5)

    assert index.classes == ["cat", "dog"]
    assert [record.path.name for record in index.split("train")] == ["v_cat_g01_c01.mp4", "x.mp4"]
    assert [record.path.name for record in index.split("test")] == ["v_cat_g01_c02.mp4", "y.mp4"]
    assert index.split_rule.startswith("explicit split")
    assert "cat/g01" in caplog.text


def test_a_val_folder_beside_train_and_test_is_the_validation_split_and_other_entries_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A root with train/, val/ and test/ used to read train/ and test/ only, dropping val/ and any other folder (a
    class folder beside them) without a word."""
    _touch(tmp_path, *(f"{split}/{label}/{label}{n}.mp4" for split in ("train", "val", "test") for label in ("a", "b")
                       for n in range(2)), "extra_class/x.mp4", "stray.mp4", "README.txt")

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        index = folder_index(tmp_path)

    assert index.counts() == {"train": 4, "val": 4, "test": 4}
    assert {record.label for record in index.split("val")} == {"a", "b"}
    assert index.split_rule == "explicit split: the train/, val/ and test/ folders as given"
    assert (f"{tmp_path} holds the split as given (train/, val/, test/); not read beside them: extra_class/, "
            "stray.mp4") in caplog.text
    assert "README.txt" not in caplog.text


def test_a_train_or_test_folder_without_the_other_is_said_to_be_read_as_a_class(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _touch(tmp_path, *(f"{split}/{label}/{label}{n}.mp4" for split in ("train", "val") for label in ("a", "b")
                       for n in range(2)))

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        index = folder_index(tmp_path)

    assert index.classes == ["train", "val"]
    assert (f"{tmp_path} holds train/, val/ but no test/: they are read as class folders; a split as given needs "
            "train/ and test/ (val/ optional)") in caplog.text


def test_a_missing_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        folder_index(tmp_path / "nowhere")


def test_a_root_without_class_folders_is_named(tmp_path: Path) -> None:
    _touch(tmp_path, "loose.mp4")

    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path}: no class folders")):
        folder_index(tmp_path)


def test_videos_lying_directly_in_the_root_are_named_in_a_warning(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A class folder given as the root by mistake made its sub-folders the classes and dropped its own videos."""
    _ungrouped(tmp_path, {"a": 3, "b": 3})
    _touch(tmp_path, *(f"loose{n}.mp4" for n in range(5)), "notes.txt")

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        index = folder_index(tmp_path)

    assert len(index.records) == 6
    assert (f"{tmp_path}: 5 videos directly in it, outside any class folder, not read (such as loose0.mp4, "
            f"loose1.mp4, loose2.mp4 and 2 more): class folders are {tmp_path}/<class>/<video>") in caplog.text
    assert "If it is one class's folder, give its parent as the root" in caplog.text


def test_a_root_of_videos_whose_folders_hold_none_looks_like_one_class_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "clip1.avi", "clip2.avi", "thumbnails/a.jpg")

    with pytest.raises(FileNotFoundError, match=re.escape(
            f"{tmp_path}: no class folder holds a video, but 2 videos directly in it (such as clip1.avi, "
            "clip2.avi): it looks like one class's folder")):
        folder_index(tmp_path)


def test_class_folders_without_any_video_are_refused(tmp_path: Path) -> None:
    _touch(tmp_path, "a/readme.txt", "b/frame.png")

    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path}: no class folder holds a video")):
        folder_index(tmp_path)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2])
def test_a_test_fraction_outside_0_to_1_is_refused(tmp_path: Path, fraction: float) -> None:
    _ungrouped(tmp_path, {"a": 3})

    with pytest.raises(ValueError, match="test_fraction"):
        folder_index(tmp_path, test_fraction=fraction)


@pytest.mark.realdata
def test_the_real_ucf_videos_as_a_folder_dataset_split_by_group() -> None:
    index = folder_index(real_data("ucf101-mini", "UCF-101"), test_fraction=0.3, seed=0)

    assert index.classes == ["ApplyEyeMakeup", "ApplyLipstick", "BalanceBeam", "BaseballPitch"]
    assert len(index.records) == 517
    assert all(record.group is not None for record in index.records)
    _assert_groups_disjoint(index)
    assert 0.2 < len(index.split("test")) / len(index.records) < 0.4


def test_what_an_index_passes_over_is_said_by_rank_zero_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process of a DDP fit or of torchrun builds the index: each said the same warnings again."""
    _touch(tmp_path, *(f"{split}/a/{split}{n}.mp4" for split in ("train", "test") for n in range(2)), "train/a/b.h265",
           "extra/x.mp4", "stray.mp4")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        folder_index(tmp_path)
    assert caplog.text == ""
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.folders"):
        folder_index(tmp_path)
    assert "the index passed over 1 file" in caplog.text and "not read beside them: extra/, stray.mp4" in caplog.text

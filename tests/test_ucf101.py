"""UCF101 index: the official folds on the real class subset, and the loader's handling of partial or broken input."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from conftest import deny_listing, real_data
from vidrnn.data.ucf101 import ucf101_index

MINI_CLASSES = ["ApplyEyeMakeup", "ApplyLipstick", "BalanceBeam", "BaseballPitch"]


@pytest.fixture
def ucf_mini() -> Path:
    real_data("ucf101-mini", "UCF-101")
    return real_data("ucf101-mini")


def _listed_for_mini_classes(list_file: Path) -> int:
    """Count list lines of the four classes on disk, independently of the loader."""
    lines = list_file.read_text().splitlines()
    return sum(1 for line in lines if line.split("/")[0] in MINI_CLASSES)


@pytest.mark.realdata
def test_fold_1_of_the_mini_subset_matches_the_published_counts(ucf_mini: Path) -> None:
    index = ucf101_index(ucf_mini, ucf_mini / "ucfTrainTestlist", fold=1)

    assert index.classes == MINI_CLASSES
    assert index.counts() == {"train": 367, "test": 150}
    assert index.missing == []
    assert index.split_rule.startswith("UCF101 official split 1")
    assert all(record.path.is_file() for record in index.records)


@pytest.mark.realdata
@pytest.mark.parametrize("fold", [1, 2, 3])
def test_each_fold_holds_exactly_the_listed_clips_of_present_classes(ucf_mini: Path, fold: int) -> None:
    splits = ucf_mini / "ucfTrainTestlist"
    index = ucf101_index(ucf_mini, splits, fold=fold)

    assert index.counts() == {
        "train": _listed_for_mini_classes(splits / f"trainlist0{fold}.txt"),
        "test": _listed_for_mini_classes(splits / f"testlist0{fold}.txt"),
    }


@pytest.mark.realdata
@pytest.mark.parametrize("fold", [1, 2, 3])
def test_no_group_spans_train_and_test(ucf_mini: Path, fold: int) -> None:
    index = ucf101_index(ucf_mini, fold=fold)

    train_groups = {record.group for record in index.split("train")}
    test_groups = {record.group for record in index.split("test")}
    assert train_groups and test_groups
    assert not train_groups & test_groups


@pytest.mark.realdata
def test_fold_1_tests_on_groups_1_to_7(ucf_mini: Path) -> None:
    index = ucf101_index(ucf_mini, fold=1)

    assert {record.group for record in index.split("test")} == {f"g{number:02d}" for number in range(1, 8)}


@pytest.mark.realdata
def test_root_may_be_the_videos_folder_or_its_parent(ucf_mini: Path) -> None:
    from_parent = ucf101_index(ucf_mini, ucf_mini / "ucfTrainTestlist", fold=2)
    from_videos = ucf101_index(ucf_mini / "UCF-101", ucf_mini / "ucfTrainTestlist", fold=2)

    assert from_parent.root == from_videos.root == ucf_mini / "UCF-101"
    assert from_parent.records == from_videos.records


def _write_crlf(path: Path, lines: list[str]) -> None:
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())


def _make_ucf(tmp_path: Path, on_disk: dict[str, list[str]]) -> tuple[Path, Path]:
    """A tiny official-style layout: classInd lists Zeta, Alpha, Absent (in that order); ``on_disk`` decides files."""
    videos, splits = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    for label, names in on_disk.items():
        (videos / label).mkdir(parents=True)
        for name in names:
            (videos / label / name).touch()
    _write_crlf(splits / "classInd.txt", ["1 Zeta", "2 Alpha", "3 Absent"])
    train = ["Zeta/v_Zeta_g02_c01.avi 1", "Alpha/v_Alpha_g02_c01.avi 2", "Absent/v_Absent_g02_c01.avi 3"]
    test = ["Zeta/v_Zeta_g01_c01.avi", "Alpha/v_Alpha_g01_c01.avi", "Absent/v_Absent_g01_c01.avi"]
    for fold in (1, 2, 3):
        _write_crlf(splits / f"trainlist0{fold}.txt", train)
        _write_crlf(splits / f"testlist0{fold}.txt", test)
    return videos, splits


def test_classes_are_the_present_ones_in_class_ind_order_and_crlf_is_stripped(tmp_path: Path) -> None:
    videos, splits = _make_ucf(
        tmp_path,
        {"Zeta": ["v_Zeta_g01_c01.avi", "v_Zeta_g02_c01.avi"], "Alpha": ["v_Alpha_g01_c01.avi", "v_Alpha_g02_c01.avi"]},
    )

    index = ucf101_index(tmp_path, splits, fold=1)

    assert index.classes == ["Zeta", "Alpha"]
    assert [(record.path, record.label, record.group, record.split) for record in index.records] == [
        (videos / "Zeta" / "v_Zeta_g02_c01.avi", "Zeta", "g02", "train"),
        (videos / "Alpha" / "v_Alpha_g02_c01.avi", "Alpha", "g02", "train"),
        (videos / "Zeta" / "v_Zeta_g01_c01.avi", "Zeta", "g01", "test"),
        (videos / "Alpha" / "v_Alpha_g01_c01.avi", "Alpha", "g01", "test"),
    ]
    assert index.missing == []


def test_class_folders_that_cannot_be_read_refuse_the_index_naming_each(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A class folder linked to an unmounted disk was left out as a class not on disk (the run trained on a subset
    of classes without a word), and one this user may not list ended in a PermissionError from its listing."""
    videos, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi", "v_Zeta_g02_c01.avi"], "Absent": []})
    (videos / "Alpha").symlink_to(tmp_path / "unmounted" / "Alpha")
    deny_listing(monkeypatch, videos / "Absent")

    with pytest.raises(ValueError) as refused:
        ucf101_index(videos, splits, fold=1)

    message = str(refused.value)
    assert f"{videos / 'Alpha'}: is a symbolic link to {tmp_path / 'unmounted' / 'Alpha'}, which does not exist" in message
    assert f"{videos / 'Absent'}: cannot be listed: permission denied" in message


def test_listed_clips_missing_from_a_present_class_are_reported_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    videos, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi", "v_Zeta_g02_c01.avi"], "Alpha": []})

    with caplog.at_level(logging.WARNING, logger="vidrnn.data.ucf101"):
        index = ucf101_index(videos, splits, fold=3)

    assert index.missing == [videos / "Alpha" / "v_Alpha_g02_c01.avi", videos / "Alpha" / "v_Alpha_g01_c01.avi"]
    assert [record.label for record in index.records] == ["Zeta", "Zeta"]
    assert ("2 clips listed for split 3 are missing under " f"{videos}: Alpha/v_Alpha_g02_c01.avi, "
            "Alpha/v_Alpha_g01_c01.avi; they are left out, so the split is not the full official one") in caplog.text
    assert index.split_rule.endswith(", 2 listed clips missing")  # what splits.json and the split's summary say


def test_clips_and_class_folders_the_lists_do_not_name_are_said_once_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Files in a class folder that no list of the fold names, and folders that are no class of classInd.txt, were
    passed over without a word (listed clips missing from the disk were warned about)."""
    videos, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi", "v_Zeta_g02_c01.avi", "v_Zeta_g09_c01.avi"],
                                          "Alpha": ["v_Alpha_g01_c01.avi", "v_Alpha_g02_c01.avi", ".DS_Store",
                                                    "README.txt", "Thumbs.db"],
                                          "Beta": ["v_Beta_g01_c01.avi"], "Gamma": []})

    (videos / "Alpha" / "notes").mkdir()  # what is no video the folders dataset would not read either: not said
    with caplog.at_level(logging.WARNING, logger="vidrnn.data.ucf101"):
        index = ucf101_index(videos, splits, fold=1)

    assert index.unlisted == [videos / "Beta", videos / "Gamma", videos / "Zeta" / "v_Zeta_g09_c01.avi"]
    assert (f"{videos}: not read, as the split lists do not name them: 1 video in the class folders that neither "
            "trainlist01.txt nor testlist01.txt names (Zeta/v_Zeta_g09_c01.avi) and 2 folders that are no class of "
            "classInd.txt (Beta, Gamma)") in caplog.text
    assert caplog.text.count("not read, as the split lists") == 1
    assert index.counts() == {"train": 2, "test": 2}


def test_missing_clips_are_warned_about_by_rank_zero_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process of a DDP fit or of torchrun builds the index: each said the missing clips again."""
    from lightning.pytorch.utilities import rank_zero_only

    videos, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi", "v_Zeta_g02_c01.avi"], "Alpha": []})
    for rank, said in ((1, False), (0, True)):
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vidrnn.data.ucf101"):
            assert len(ucf101_index(videos, splits, fold=3).missing) == 2
        assert ("clips listed for split 3 are missing" in caplog.text) == said


@pytest.mark.parametrize("fold", [0, 4])
def test_a_fold_outside_1_to_3_is_refused(tmp_path: Path, fold: int) -> None:
    _, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi"]})

    with pytest.raises(ValueError, match=f"fold must be one of .*got {fold}"):
        ucf101_index(tmp_path, splits, fold=fold)


def test_a_missing_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        ucf101_index(tmp_path / "nowhere", tmp_path, fold=1)


def test_a_missing_split_file_is_named(tmp_path: Path) -> None:
    _, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi"]})
    (splits / "testlist02.txt").unlink()

    with pytest.raises(FileNotFoundError, match=re.escape(str(splits / "testlist02.txt"))):
        ucf101_index(tmp_path, splits, fold=2)
    assert ucf101_index(tmp_path, splits, fold=1).counts() == {"test": 1}


def test_class_folders_without_split_lists_are_refused_pointing_to_the_folders_dataset(tmp_path: Path) -> None:
    """A folder of one's own class folders given to a UCF101 command said only that classInd.txt was not found."""
    (tmp_path / "videos" / "dog").mkdir(parents=True)
    expected = (f"{tmp_path / 'ucfTrainTestlist' / 'classInd.txt'}: UCF101 split file not found. Put the official "
                "ucfTrainTestlist folder (classInd.txt, trainlist01-03.txt, testlist01-03.txt) beside "
                f"{tmp_path / 'videos'}, or give where it is: --data.splits DIR (vidrnn fit, validate, test, predict) "
                "or --splits DIR (vidrnn extract). Without the official lists, --data.dataset folders (--dataset "
                f"folders for vidrnn extract) reads {tmp_path / 'videos'} as one folder per class with a split of its "
                "own, which gives up the official fold (scores not comparable to published ones)")
    with pytest.raises(FileNotFoundError, match=re.escape(expected)):
        ucf101_index(tmp_path / "videos")


def test_a_split_lists_folder_without_a_list_names_the_options_that_give_the_official_one(tmp_path: Path) -> None:
    videos, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi"]})
    (splits / "trainlist01.txt").unlink()

    with pytest.raises(FileNotFoundError) as refusal:
        ucf101_index(videos, splits, fold=1)
    said = str(refusal.value)
    assert said.startswith(f"{splits / 'trainlist01.txt'}: UCF101 split file not found. Put the official "
                           "ucfTrainTestlist folder")
    assert said.index("--data.splits DIR") < said.index("--splits DIR (vidrnn extract)") < said.index(
        "--data.dataset folders")
    assert "splits_dir" not in said


def test_a_link_to_the_videos_folder_finds_the_split_lists_beside_the_folder_it_points_at(tmp_path: Path) -> None:
    """``data/UCF101 -> /datasets/UCF101/UCF-101`` looked for ucfTrainTestlist beside the link and failed."""
    (tmp_path / "datasets").mkdir()
    _make_ucf(tmp_path / "datasets", {"Zeta": ["v_Zeta_g01_c01.avi", "v_Zeta_g02_c01.avi"]})
    (tmp_path / "project").mkdir()
    link = tmp_path / "project" / "UCF101"
    link.symlink_to(tmp_path / "datasets" / "UCF-101", target_is_directory=True)

    index = ucf101_index(link, fold=1)

    assert index.counts() == {"train": 1, "test": 1}


def test_split_lists_beside_the_link_win_over_those_beside_its_target(tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    _make_ucf(tmp_path / "datasets", {"Zeta": ["v_Zeta_g01_c01.avi", "v_Zeta_g02_c01.avi"]})
    link = tmp_path / "project" / "UCF-101"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "datasets" / "UCF-101", target_is_directory=True)
    beside_link = tmp_path / "project" / "ucfTrainTestlist"
    beside_link.mkdir()
    _write_crlf(beside_link / "classInd.txt", ["1 Zeta"])
    for fold in (1, 2, 3):
        _write_crlf(beside_link / f"trainlist0{fold}.txt", ["Zeta/v_Zeta_g01_c01.avi 1", "Zeta/v_Zeta_g02_c01.avi 1"])
        _write_crlf(beside_link / f"testlist0{fold}.txt", [])

    assert ucf101_index(link, fold=1).counts() == {"train": 2}


def test_a_root_without_any_listed_class_is_refused(tmp_path: Path) -> None:
    _, splits = _make_ucf(tmp_path, {"Other": ["v_Other_g01_c01.avi"]})

    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'UCF-101'}: none of the 3 classes")):
        ucf101_index(tmp_path, splits, fold=1)


def test_a_group_on_both_sides_of_a_fold_is_refused(tmp_path: Path) -> None:
    _, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi", "v_Zeta_g01_c02.avi"]})
    _write_crlf(splits / "trainlist01.txt", ["Zeta/v_Zeta_g01_c02.avi 1"])

    with pytest.raises(ValueError, match=r"groups \['g01'\] appear in both"):
        ucf101_index(tmp_path, splits, fold=1)


def test_a_clip_name_without_a_group_is_refused(tmp_path: Path) -> None:
    _, splits = _make_ucf(tmp_path, {"Zeta": ["v_Zeta_g01_c01.avi", "zeta_take1.avi"]})
    _write_crlf(splits / "trainlist01.txt", ["Zeta/zeta_take1.avi 1"])

    with pytest.raises(ValueError, match="zeta_take1.avi has no _gGG_cCC_"):
        ucf101_index(tmp_path, splits, fold=1)


@pytest.mark.parametrize(("train_list", "refused"), [
    ("Jump/v_Jump_g08_c01.avi 1\nJump/../../../tmp/v_x_g08_c01.avi 1\n", r"trainlist01.txt:2: .* not Class/video"),
    # Blank lines are passed over, but the number in the message is the one an editor shows.
    ("Jump/v_Jump_g08_c01.avi 1\n\n  \nv_x_g08_c01.avi 1\n\n", r"trainlist01.txt:4: 'v_x_g08_c01.avi 1' is not Class/video"),
])
def test_a_list_line_that_leaves_the_videos_folder_is_refused_by_line(tmp_path: Path, train_list: str,
                                                                       refused: str) -> None:
    videos, lists = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    (videos / "Jump").mkdir(parents=True)
    lists.mkdir()
    (lists / "classInd.txt").write_text("\n1 Jump\n\n")
    (lists / "trainlist01.txt").write_text(train_list)
    (lists / "testlist01.txt").write_text("\nJump/v_Jump_g01_c01.avi\n")
    with pytest.raises(ValueError, match=refused):
        ucf101_index(tmp_path, fold=1)

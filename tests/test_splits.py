"""A run's split against its checkpoint's, and what a split holds (vidrnn.data.splits)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from vidrnn.data.folders import folder_index
from vidrnn.data.module import _fit_splits
from vidrnn.data.splits import (
    FITTED_CLIPS,
    check_split,
    copy_warnings,
    identical_copies,
    split_counts,
    split_summary,
    write_split_record,
)

#: The data settings of a checkpoint trained on class folders with the data module's defaults.
TRAINED = {"dataset": "folders", "root": "", "fold": 1, "splits": None, "test_fraction": 0.3, "val_fraction": 0.2,
           "seed": 0, "batch_size": 32, "num_workers": 0, "cache_dir": "vidrnn-cache", "steps": 16}


def _folders(root: Path, explicit: bool = False) -> Path:
    """Class folders of six recording groups each (``_gNN_`` names), or ``train/`` and ``test/`` folders of them."""
    for split in ("train", "test") if explicit else ("",):
        for label in ("a", "b"):
            for group in range(6):
                path = root / split / label / f"{label}_g{group:02d}_c01.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
    return root


def _refusal(trained: dict[str, Any], stage: str, **here: Any) -> str | None:
    """Why ``stage`` with the checkpoint's settings changed by ``here`` is refused; ``None`` when it is not."""
    try:
        check_split(trained, {**trained, **here}, stage)
    except ValueError as error:
        return str(error)
    return None


def test_another_seed_draws_test_clips_the_checkpoint_trained_on(tmp_path: Path) -> None:
    """The walkthrough's case: on class folders, --data.seed at test time draws other test groups, which were training
    clips under the seed the checkpoint was trained with."""
    root = _folders(tmp_path)
    trained_on = {record.path for record in folder_index(root, seed=0).split("train")}
    assert trained_on & {record.path for record in folder_index(root, seed=1).split("test")}
    refused = _refusal({**TRAINED, "root": str(root)}, "test", seed=1)
    assert refused is not None and refused.startswith(
        "the checkpoint was trained with another split of the data (data.seed: 0 there, 1 here): the test clips "
        "would include clips the model trained on")


@pytest.mark.parametrize(("stage", "change", "refused"), [
    ("test", {"seed": 1}, "data.seed: 0 there, 1 here"),
    ("predict", {"test_fraction": 0.5}, "data.test_fraction: 0.3 there, 0.5 here"),
    ("test", {"dataset": "unlabeled"}, "data.dataset: folders there, unlabeled here"),
    ("validate", {"val_fraction": 0.4}, "data.val_fraction: 0.2 there, 0.4 here"),
    ("test", {"val_fraction": 0.4}, None),  # validation is carved from the training side: the test split stays
    ("fit", {"seed": 2, "test_fraction": 0.5},
     "data.test_fraction: 0.3 there, 0.5 here; data.seed: 0 there, 2 here"),
    ("test", {"batch_size": 2, "num_workers": 4, "cache_dir": "elsewhere", "steps": 8}, None),
])
def test_class_folders_are_refused_another_split_and_nothing_else(stage: str, change: dict[str, Any],
                                                                   refused: str | None, tmp_path: Path) -> None:
    error = _refusal({**TRAINED, "root": str(_folders(tmp_path))}, stage, **change)
    assert (error is None) if refused is None else (error is not None and f"({refused})" in error)


@pytest.mark.parametrize(("stage", "change", "refused"), [
    ("test", {"fold": 2}, "data.fold: 1 there, 2 here"),
    ("predict", {"fold": 3}, "data.fold: 1 there, 3 here"),
    ("test", {"seed": 1, "test_fraction": 0.5}, None),  # the official lists decide UCF101's test split
    ("validate", {"seed": 1}, "data.seed: 0 there, 1 here"),  # but the seed draws the validation groups
    ("test", {"dataset": "folders"}, "data.dataset: ucf101 there, folders here"),
])
def test_ucf101_is_refused_another_fold_and_for_validation_another_seed(stage: str, change: dict[str, Any],
                                                                         refused: str | None, tmp_path: Path) -> None:
    error = _refusal({**TRAINED, "dataset": "ucf101", "root": str(tmp_path)}, stage, **change)
    assert (error is None) if refused is None else (error is not None and f"({refused})" in error)


def test_train_and_test_folders_are_the_test_split_whatever_the_seed_but_the_seed_draws_validation(
        tmp_path: Path) -> None:
    trained = {**TRAINED, "root": str(_folders(tmp_path, explicit=True))}
    assert _refusal(trained, "test", seed=1, test_fraction=0.5) is None
    assert "(data.seed: 0 there, 1 here): the validation clips" in _refusal(trained, "validate", seed=1)


def test_a_val_folder_is_the_validation_split_whatever_the_validation_fraction_or_seed(tmp_path: Path) -> None:
    """With train/, val/ and test/ the validation clips are the val/ folder's: another val_fraction was refused as
    "the validation clips would include clips the model trained on", which was untrue."""
    root = _folders(tmp_path, explicit=True)
    (root / "val" / "a").mkdir(parents=True)
    trained = {**TRAINED, "root": str(root)}
    assert _refusal(trained, "validate", val_fraction=0.1, seed=1) is None
    assert "(data.seed: 0 there, 1 here)" in _refusal(trained, "fit", seed=1)  # a resumed fit's epochs draw on it
    assert _refusal(trained, "fit", val_fraction=0.1) is None


def test_the_fix_names_the_training_runs_config_and_a_checkpoint_without_data_settings_is_not_checked(
        tmp_path: Path) -> None:
    trained = {**TRAINED, "root": str(_folders(tmp_path))}
    config = tmp_path / "version_0" / "config.yaml"
    with pytest.raises(ValueError, match=re.escape(f"Use the data settings it was trained with: --config {config}, "
                                                   "without overriding those")):
        check_split(trained, {**trained, "seed": 1}, "test", config)
    check_split(None, {**trained, "seed": 1}, "test")  # a checkpoint saved without a data module's settings


def test_another_spelling_of_the_root_is_the_same_data_and_other_videos_are_warned_about(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not refused: testing other videos of the same classes is a fair question. Where the checkpoint's root does not
    exist here (the data moved, another machine) nothing can be told, and nothing is said."""
    root = _folders(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    trained = {**TRAINED, "root": str(root)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_split(trained, {**trained, "root": "data"}, "test")
        check_split({**trained, "root": str(tmp_path / "moved away")}, trained, "test")
    other = _folders(tmp_path / "other")
    with pytest.warns(UserWarning, match=f"trained on the videos under {re.escape(str(root))}; this run reads those "
                                         f"under {re.escape(str(other))}"):
        check_split(trained, {**trained, "root": str(other)}, "test")


def test_other_videos_and_copies_named_alike_are_warned_about_by_rank_zero_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process of a DDP test checks the split: each warned again."""
    from lightning.pytorch.utilities import rank_zero_only

    original, copy = _folders(tmp_path / "original"), _folders(tmp_path / "copy")
    trained = {**TRAINED, "dataset": "folders", "root": str(original), FITTED_CLIPS: {"train": ["a/a_g00_c01.mp4"]}}
    here = {**TRAINED, "dataset": "folders", "root": str(copy)}
    for rank, expected in ((1, 0), (0, 2)):
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_split(trained, here, "test", reads={"test": ["a/a_g00_c01.mp4"]})
        said = [str(warning.message) for warning in caught]
        assert len(said) == expected, said
    assert "this run reads those under" in said[0] and "have the names of clips the model was" in said[1]


def test_the_summary_gives_the_rule_and_the_clips_of_each_split_and_class(tmp_path: Path) -> None:
    counts = split_counts({"train": ["a", "a", "b"], "val": ["a"], "test": ["b", "b"]}, ["a", "b"])
    assert counts == {"a": {"train": 2, "val": 1, "test": 0}, "b": {"train": 1, "val": 0, "test": 2}}
    assert split_summary("RULE", counts) == ("split: RULE; clips: train 3, val 1, test 2; per class (train/val/test): "
                                             "a 2/1/0, b 1/0/2")
    many = split_counts({"train": [str(k) for k in range(13)]}, [str(k) for k in range(13)])
    assert split_summary("RULE", many) == "split: RULE; clips: train 13"  # no list of 13 classes in one line
    lists = {"train": ["a/1", "a/2", "b/1"], "val": ["a/3"], "test": ["b/2", "b/3"]}
    copies = {"test": [{"test": ["b/2"], "train": ["a/1"]}], "val": [], "test_val": [],
              "different_labels": [["a/1", "b/2"]]}
    unreadable = {"train": {}, "val": {}, "test": {"b/5": "cannot be opened as a video"}}
    too_short = {"train": {"a/4": "1 cached frame, fewer than the 2 the arrow of time needs"}, "val": {}, "test": {}}
    cut_short = {"train": {}, "val": {}, "test": {"b/3": "decoded 22 of the 78 frames its container states"}}
    groups = {"b/2": ("b", "b/g01"), "b/3": ("b", None)}
    write_split_record(tmp_path / "splits.json", "RULE", tmp_path, counts, lists, copies, ["b/4"], unreadable,
                       too_short=too_short, cut_short=cut_short, test_groups=groups, unlisted=["c", "b/6"])
    assert json.loads((tmp_path / "splits.json").read_text()) == {
        "rule": "RULE", "root": str(tmp_path), "clips": {"train": 3, "val": 1, "test": 2}, "per_class": counts,
        "clip_lists": lists, "identical_copies": copies, "missing": ["b/4"], "unlisted": ["c", "b/6"],
        "unreadable": unreadable,
        "too_short": too_short, "cut_short": cut_short, "test_groups": {"b/2": ["b", "b/g01"], "b/3": ["b", None]}}


def test_other_videos_are_a_fair_test_whatever_their_dataset_kind_or_split_settings(tmp_path: Path) -> None:
    """A model trained on UCF101 tested on your own class folders of the same actions: no clip of the test can be one
    it trained on, so their dataset kind and seed are theirs to choose (it is said, not refused)."""
    trained = {**TRAINED, "dataset": "ucf101", "root": str(_folders(tmp_path / "ucf101"))}
    with pytest.warns(UserWarning, match="this run reads those under"):
        assert _refusal(trained, "test", dataset="folders", root=str(_folders(tmp_path / "mine")), seed=3) is None


def test_ucf101_read_through_other_split_lists_is_refused(tmp_path: Path) -> None:
    """Any test list can name the clips the official training list trained on."""
    root = _folders(tmp_path / "UCF101")
    official, mine = tmp_path / "ucfTrainTestlist", tmp_path / "my_lists"
    official.mkdir()
    mine.mkdir()
    trained = {**TRAINED, "dataset": "ucf101", "root": str(root)}
    refused = _refusal(trained, "test", splits=str(mine))
    assert refused is not None and f"(data.splits: {official} there, {mine} here)" in refused
    assert _refusal(trained, "test", splits=str(official)) is None  # the same lists, named


def _keys(root: Path, records: list) -> list[str]:
    return [record.path.relative_to(root).as_posix() for record in records]


@pytest.mark.parametrize("change", ["videos added", "a video removed"])
def test_a_test_split_drawn_again_since_training_is_refused_saying_how_many_why_and_what_to_do(
        change: str, tmp_path: Path) -> None:
    """The settings are the same, the folder is not: each class's recording groups are shuffled with the seed, so one
    video more or less draws the class's test groups again, and clips the model trained on become test clips."""
    root = _folders(tmp_path)
    trained_on = _keys(root, folder_index(root).split("train"))
    if change == "videos added":
        (root / "a" / "a_g06_c01.mp4").touch()  # two new recordings
        (root / "a" / "a_g07_c01.mp4").touch()
    else:
        (root / "a" / "a_g05_c01.mp4").unlink()  # a test clip, deleted after the fit reported it unreadable
    index = folder_index(root)
    reads = {"train": _keys(root, index.split("train")), "val": [], "test": _keys(root, index.split("test"))}
    assert set(reads["test"]) & set(trained_on) == {"a/a_g02_c01.mp4"}  # the reviewer's finding, in miniature
    trained = {**TRAINED, "root": str(root), "fitted_clips": {"train": trained_on, "val": []}}
    with pytest.raises(ValueError) as refused:
        check_split(trained, {**TRAINED, "root": str(root)}, "test", reads=reads)
    assert str(refused.value) == (
        f"1 of the {len(reads['test'])} test clips under {root} is a clip the model was trained or validated on (such "
        f"as a/a_g02_c01.mp4): the videos under {root} have changed since training, and a seeded split over each "
        "class's recording groups is drawn again when a video is added or removed, so the test scores would be too "
        f"good. Restore {root} as it was when the model was trained, or train a new model on it as it is now (vidrnn "
        "fit); to score new videos with this checkpoint, use vidrnn classify")


def test_a_validation_split_drawn_again_for_a_video_of_another_class_is_refused_saying_the_draw_spans_classes(
        tmp_path: Path) -> None:
    """Validation groups are drawn in one seeded draw over the classes in name order: a recording added to class a
    moved b's clips between training and validation, and the refusal blamed the folder's split as if only class a's
    were drawn again. Each class's test groups are drawn on their own: b's stay."""
    root = _folders(tmp_path)
    settings = {**TRAINED, "root": str(root), "val_fraction": 0.3, "train_fraction": 1.0}
    before, tested = _fit_splits(folder_index(root), settings), _keys(root, folder_index(root).split("test"))
    (root / "a" / "a_g06_c01.mp4").touch()
    index = folder_index(root)
    after = {name: _keys(root, records) for name, records in _fit_splits(index, settings).items()}
    assert [key for key in _keys(root, index.split("test")) if key.startswith("b/")] == [
        key for key in tested if key.startswith("b/")]
    trained = {**settings, "fitted_clips": {name: _keys(root, records) for name, records in before.items()}}
    with pytest.raises(ValueError) as refused:
        check_split(trained, settings, "validate", reads={**after, "test": _keys(root, index.split("test"))})
    assert str(refused.value).startswith(f"1 of the 3 validation clips under {root} is a clip the model was trained "
                                         "on (such as b/b_g00_c01.mp4): the videos under")
    assert ("the validation groups (and data.train_fraction's) are drawn in one seeded draw over the classes in name "
            "order, so a video added to or removed from one class folder draws those of the classes after it again "
            "too") in str(refused.value)


@pytest.mark.parametrize(("stage", "reads", "refused"), [
    ("test", {"test": ["a/3", "a/1"]}, "1 of the 2 test clips under {root} is a clip the model was trained or "
                                       "validated on (such as a/1)"),
    ("predict", {"test": ["a/2", "a/3"]}, "1 of the 2 test clips under {root} is a clip the model was trained or "
                                          "validated on (such as a/2)"),
    ("validate", {"val": ["a/1", "a/0"], "test": ["a/1"]}, "2 of the 2 validation clips under {root} are clips the "
                                                           "model was trained on (such as a/0)"),
    ("validate", {"val": ["a/2"], "test": ["a/1"]}, None),  # the clips it was validated on; the test split is not read
    ("test", {"val": ["a/1"], "test": ["a/3"]}, None),  # the validation split is not read
    ("fit", {"val": ["a/2"], "test": ["a/1"]}, "1 of the 1 test clips"),  # a resumed fit tests at its end
])
def test_each_command_is_refused_the_clips_the_model_was_fitted_on_in_the_split_it_reads(
        stage: str, reads: dict[str, list[str]], refused: str | None, tmp_path: Path) -> None:
    """A test clip must have been neither trained nor validated on (validation chose the checkpoint); a validation
    clip must not have been trained on."""
    trained = {**TRAINED, "root": str(tmp_path), "fitted_clips": {"train": ["a/0", "a/1"], "val": ["a/2"]}}
    try:
        check_split(trained, trained, stage, reads=reads)
    except ValueError as error:
        assert refused is not None and str(error).startswith(refused.format(root=tmp_path))
    else:
        assert refused is None


def test_a_checkpoint_without_fitted_clips_and_other_videos_are_held_to_the_settings_alone(tmp_path: Path) -> None:
    """Checkpoints from before the record keep the settings check; other videos than the model's share no clip with
    it, whatever their relative paths."""
    root = _folders(tmp_path / "data")
    reads = {"train": [], "val": [], "test": ["a/a_g00_c01.mp4"]}
    check_split({**TRAINED, "root": str(root)}, {**TRAINED, "root": str(root)}, "test", reads=reads)
    trained = {**TRAINED, "root": str(root), "fitted_clips": {"train": ["a/a_g00_c01.mp4"], "val": []}}
    with pytest.warns(UserWarning, match="this run reads those under"):
        check_split(trained, {**TRAINED, "root": str(_folders(tmp_path / "other"))}, "test", reads=reads)


def test_identical_copies_are_found_by_their_bytes_digest_and_clips_without_one_are_passed_over() -> None:
    """Copies within one side hide nothing; a copy on both sides, or under two labels, does. A cache older than the
    digests records none for its videos: nothing to say about them."""
    lists = {"train": ["a/1", "a/2", "b/1", "b/2"], "val": ["a/3"], "test": ["a/4", "b/3", "b/4"]}
    labels = {"train": ["a", "a", "b", "b"], "val": ["a"], "test": ["a", "b", "b"]}
    digests = {"a/1": "x", "a/2": "x", "b/1": "y", "a/3": "x", "a/4": "z", "b/3": "y", "b/4": "w", "b/2": "w"}
    assert identical_copies(lists, labels, digests) == {
        "test": [{"test": ["b/3"], "train": ["b/1"]}, {"test": ["b/4"], "train": ["b/2"]}],
        "val": [{"val": ["a/3"], "train": ["a/1", "a/2"]}], "test_val": [], "different_labels": []}
    assert identical_copies(lists, labels, {**digests, "b/1": "x"}) == {
        "test": [{"test": ["b/4"], "train": ["b/2"]}], "val": [{"val": ["a/3"], "train": ["a/1", "a/2", "b/1"]}],
        "test_val": [], "different_labels": [["a/1", "a/2", "a/3", "b/1"]]}
    assert identical_copies(lists, labels, {}) == {"test": [], "val": [], "test_val": [], "different_labels": []}


def test_test_clips_identical_to_validation_clips_are_found_though_no_training_clip_is_their_copy() -> None:
    """Validation chose the checkpoint: a test clip that is a validation clip's copy was scored by the epoch picked
    on it, and only copies of training clips were looked for."""
    lists = {"train": ["a/1"], "val": ["a/2", "b/1"], "test": ["a/3", "b/2"]}
    labels = {"train": ["a"], "val": ["a", "b"], "test": ["a", "b"]}
    digests = {"a/1": "x", "a/2": "y", "a/3": "y", "b/1": "z", "b/2": "x"}
    assert identical_copies(lists, labels, digests) == {
        "test": [{"test": ["b/2"], "train": ["a/1"]}], "val": [], "test_val": [{"test": ["a/3"], "val": ["a/2"]}],
        "different_labels": [["a/1", "b/2"]]}


def test_identical_copies_are_one_entry_per_set_of_copies_and_their_warning_is_capped(tmp_path: Path) -> None:
    """Every test copy was listed with every training copy (273 MB of splits.json for hard links to 8 files), and the
    warning showed each such list whole (198k characters)."""
    lists = {"train": [f"a/{n}" for n in range(40)], "test": [f"b/{n}" for n in range(30)]}
    labels = {"train": ["a"] * 40, "test": ["a"] * 30}
    digests = {key: str(int(key[2:]) % 2) for keys in lists.values() for key in keys}  # two videos, copied

    copies = identical_copies(lists, labels, digests)

    assert copies["test"] == [{"test": sorted(f"b/{n}" for n in range(0, 30, 2)),
                               "train": sorted(f"a/{n}" for n in range(0, 40, 2))},
                              {"test": sorted(f"b/{n}" for n in range(1, 30, 2)),
                               "train": sorted(f"a/{n}" for n in range(1, 40, 2))}]
    test, = copy_warnings(copies, tmp_path)
    assert test.startswith(f"30 test clips under {tmp_path}, in 2 sets of byte-identical videos, are byte-identical "
                           "copies of training clips (b/0 = b/10 = b/12 = b/14 = b/16 = 30 more copies; b/1 = b/11 = "
                           "b/13 = b/15 = b/17 = 30 more copies): the test scores")


def test_the_copy_warnings_count_show_the_first_few_and_say_what_to_do(tmp_path: Path) -> None:
    copies = {"test": [{"test": [f"a/{n}"], "train": [f"b/{n}"]} for n in range(5)], "val": [], "test_val": [],
              "different_labels": [["a/1", "b/1"]]}
    test, labels = copy_warnings(copies, tmp_path)
    assert test == (f"5 test clips under {tmp_path} are byte-identical copies of training clips (a/0 = b/0; a/1 = b/1; "
                    "a/2 = b/2; and 2 more sets): the test scores are optimistic by them, as the model trained on the same "
                    "video. splits.json lists every copy (identical_copies); remove the copies before training to "
                    "score only unseen videos")
    assert labels.startswith(f"1 video has byte-identical copies under other labels in {tmp_path} (a/1 = b/1): "
                             "label noise")
    assert copy_warnings({"test": [], "val": [], "test_val": [], "different_labels": []}, tmp_path) == []
    chosen, = copy_warnings({"test": [], "val": [], "test_val": [{"test": ["a/3"], "val": ["a/2"]}],
                             "different_labels": []}, tmp_path)
    assert chosen == (f"1 test clip under {tmp_path} is a byte-identical copy of a validation clip (a/3 = a/2): the "
                      "test scores are optimistic by it, as the checkpoint was chosen on the same video. splits.json "
                      "lists every copy (identical_copies); remove the copies before training to score only unseen "
                      "videos")


@pytest.mark.parametrize("dataset", ["ucf101", "folders"])
def test_clips_read_from_a_copy_of_the_videos_are_held_to_the_fitted_clips_by_name(dataset: str,
                                                                                   tmp_path: Path) -> None:
    """A copy of the dataset (on a faster disk) was only warned about as "other videos": a fold-1 model tested on
    fold 2 of the copy scored 1.0 on clips it trained on. UCF101's names identify its videos, so there it is refused;
    elsewhere a name can recur in other videos, so it is warned about with the count."""
    original, copy = _folders(tmp_path / "original"), _folders(tmp_path / "copy")
    trained = {**TRAINED, "dataset": dataset, "root": str(original),
               FITTED_CLIPS: {"train": ["a/a_g00_c01.mp4", "b/b_g00_c01.mp4"], "val": ["a/a_g01_c01.mp4"]}}
    here = {**TRAINED, "dataset": dataset, "root": str(copy), "fold": 2}
    reads = {"test": ["a/a_g01_c01.mp4", "a/a_g05_c01.mp4", "b/b_g05_c01.mp4"]}
    found = (f"1 of the 3 test clips under {copy} have the names of clips the model was trained or validated on "
             f"under {original} (such as a/a_g01_c01.mp4)")
    if dataset == "ucf101":
        with pytest.warns(UserWarning, match="this run reads those under"):
            with pytest.raises(ValueError, match=re.escape(f"{found}: UCF101's names identify its videos")):
                check_split(trained, here, "test", reads=reads)
    else:
        with pytest.warns(UserWarning, match=re.escape(f"{found}: if the videos here are copies of those")):
            check_split(trained, here, "test", reads=reads)
    with pytest.warns(UserWarning, match="this run reads those under"):  # no fitted clip's name: the general warning
        check_split(trained, here, "test", reads={"test": ["a/a_g05_c01.mp4"]})

"""A classification run's split: whether it is the one a checkpoint was trained with, and what it holds.

``vidrnn validate|test|predict`` build their data module from the config and the command line, not from the checkpoint
(Lightning restores a model's hyperparameters, not its data module's). A model trained on UCF101's fold 1 and tested
with ``--data.fold 2`` is tested on clips it trained on, and so is one trained on class folders and tested with another
``--data.seed``, which draws other test groups: the score is far above the model's real one, and nothing said so. The
data settings a checkpoint was trained with travel in it (``datamodule_hyper_parameters``); :func:`check_split` holds
this run's against them before anything slow runs. The same settings draw another split when the videos change: a
class folder's test groups are shuffled with the seed, so one video added or removed after training can move training
clips into the test split. A checkpoint therefore also records the clips it was fitted on (:data:`FITTED_CLIPS`), and
:func:`check_split` refuses a split that holds any of them.

:func:`split_summary` and :func:`write_split_record` say what a split holds: the rule that made it and its clips per
split and class, which a result rests on. :func:`identical_copies` finds what no rule can keep apart: byte-identical
videos under two names (download copies, a video saved in two class folders), which land on both sides of the split or
teach one video as two classes.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

from vidrnn.data.folders import has_explicit_split
from vidrnn.data.ucf101 import VIDEOS_FOLDER, default_splits_dir
from vidrnn.files import atomic_write_bytes
from vidrnn.text import counted

__all__ = ["FITTED_CLIPS", "check_split", "copy_warnings", "identical_copies", "named_alike", "split_counts",
           "split_settings", "split_summary", "validation_rule", "videos_folder", "write_split_record"]

#: The split each command reads; a resumed fit goes on to test on the test split.
_SPLIT_READ = {"fit": "test", "validate": "validation", "test": "test", "predict": "test"}

#: Where a checkpoint's data settings keep the clips it was fitted on: ``{"train": [key, ...], "val": [...]}``, keys
#: relative to the videos folder (``VideoDataModule.state_dict``).
FITTED_CLIPS = "fitted_clips"

#: The splits each command reads clips of (a resumed fit validates, and tests at its end).
_SPLITS_CHECKED = {"fit": ("val", "test"), "validate": ("val",), "test": ("test",), "predict": ("test",)}

#: The fitted clips a split must not hold: validation chose the checkpoint, so a test clip must have been neither
#: trained nor validated on; a validation clip must not have been trained on.
_FITTED_BEFORE = {"val": ("train",), "test": ("train", "val")}

_SPLIT_NAMES = {"val": "validation", "test": "test"}

#: What to do about a split that holds clips a checkpoint was fitted on, read from a copy of its videos.
_SAME_SETTINGS = ("Use the data settings it was trained with (the config.yaml of the run that trained it), whichever "
                  "copy of the videos they are read from")

#: Up to this many classes, the summary line gives every class's counts.
_CLASSES_SHOWN = 12

#: Sets of copies a warning names, and clips of each set; ``splits.json`` lists them all.
_COPIES_SHOWN = 3
_CLIPS_SHOWN = 5


def split_settings(dataset: str, explicit: bool, stage: str, validation_given: bool = False) -> tuple[str, ...]:
    """The data settings (``data.NAME``) that decide which clips ``stage`` reads from ``dataset``.

    The dataset itself; for UCF101 and the demo the ``fold`` of their split lists; for class folders and unlabeled
    videos the ``test_fraction`` and ``seed`` their test groups are drawn with — unless the root holds ``train/`` and
    ``test/`` (``explicit``), the split as given (UCF101's split lists, ``data.splits``, are compared as folders by
    :func:`check_split`). The validation split (``validate``, and a resumed ``fit``) is drawn
    from the training side with ``val_fraction`` and ``seed`` for every dataset, unless an explicit split's ``val/``
    folder gives it (``validation_given``: then only a resumed fit's ``seed``, which draws its epochs, counts). Batch
    size, workers, the cache, sampling and steps change no split.
    """
    names = ["dataset"]
    if dataset in ("ucf101", "demo"):
        names.append("fold")
    elif not explicit:
        names += ["test_fraction", "seed"]
    if stage == "fit" or (stage == "validate" and not validation_given):
        names += ["seed"] if validation_given else ["val_fraction", "seed"]
    return tuple(dict.fromkeys(names))


def _differences(trained: Mapping[str, Any], here: Mapping[str, Any], stage: str) -> list[str]:
    """Each setting that decides ``stage``'s split (for either side's dataset) and differs, as ``data.NAME: A there,
    B here``; a setting the checkpoint does not record counts as unchanged."""
    explicit = here["dataset"] == "folders" and has_explicit_split(here["root"])
    given = explicit and (Path(here["root"]).expanduser() / "val").is_dir()
    names = dict.fromkeys(split_settings(trained.get("dataset", here["dataset"]), explicit, stage, given)
                          + split_settings(here["dataset"], explicit, stage, given))
    return [f"data.{name}: {trained[name]} there, {here[name]} here" for name in names
            if name in trained and trained[name] != here[name]]


def videos_folder(settings: Mapping[str, Any]) -> Path:
    """The folder the videos of a data module with ``settings`` are read from, resolved: what their clip keys are
    relative to, whatever spelling of the root (relative, through a link, UCF101's parent folder or ``UCF-101``
    itself)."""
    return _videos_folder_as_given(settings).resolve()


def _videos_folder_as_given(settings: Mapping[str, Any]) -> Path:
    root = Path(settings["root"]).expanduser()
    nested = root / VIDEOS_FOLDER
    return nested if settings["dataset"] in ("ucf101", "demo") and nested.is_dir() else root


def _split_lists(settings: Mapping[str, Any]) -> Path:
    """UCF101's split-list folder as a run reads it: ``data.splits``, or the default the index finds."""
    splits = settings.get("splits")
    return (Path(splits) if splits else default_splits_dir(_videos_folder_as_given(settings))).expanduser().resolve()


def _other_videos(trained: Mapping[str, Any], here: Mapping[str, Any]) -> bool:
    """Whether this run reads other videos than the checkpoint was trained on, still where they were: then it is
    said, not refused — testing on other videos of the same classes is a fair question, and their split settings
    decide nothing about the training clips. A root that is not found here is taken as the same data moved (or on
    another machine), which cannot be told apart, and compared as such."""
    there, now = videos_folder(trained), videos_folder(here)
    if there == now or not there.is_dir():
        return False
    rank_zero_warn(f"the checkpoint was trained on the videos under {there}; this run reads those under {now}: if "
                   "they are the same videos split otherwise, the scores include clips it trained on", stacklevel=5)
    return True


def _other_split_lists(trained: Mapping[str, Any], here: Mapping[str, Any]) -> list[str]:
    """UCF101 read through other split lists than it was trained with (while those are still found here): any test
    list could name training clips."""
    if trained.get("dataset") != "ucf101" or here["dataset"] != "ucf101":
        return []
    there, now = _split_lists(trained), _split_lists(here)
    return [f"data.splits: {there} there, {now} here"] if there != now and there.is_dir() else []


def check_split(trained: Mapping[str, Any] | None, here: Mapping[str, Any], stage: str,
                config: Path | None = None, reads: Mapping[str, Sequence[str]] | None = None) -> None:
    """Refuse (``ValueError``) to read a split other than the one the checkpoint was trained with.

    ``trained`` is the checkpoint's ``datamodule_hyper_parameters`` (``None``: it records none, nothing to compare),
    ``here`` this run's data settings, ``stage`` the command; ``config`` the training run's ``config.yaml``, named in
    the error as the fix, when it is known. ``reads``: the clip keys of each split this run draws (``train``, ``val``,
    ``test``), held against the clips the checkpoint was fitted on where it records them (:data:`FITTED_CLIPS`;
    older checkpoints are held to their settings alone).
    """
    if trained is None or "dataset" not in trained:
        return
    if _other_videos(trained, here):
        if reads is not None and FITTED_CLIPS in trained:
            for split in _SPLITS_CHECKED[stage]:
                before = [key for side in _FITTED_BEFORE[split] for key in trained[FITTED_CLIPS].get(side, ())]
                named_alike(before, reads.get(split, ()), trained, here,
                            f"{_SPLIT_NAMES[split]} clips", "trained on" if split == "val" else "trained or validated on")
        return
    differing = _differences(trained, here, stage) + _other_split_lists(trained, here)
    if differing:
        fix = (f"--config {config}" if config is not None else
               "the config.yaml of the run that trained it, beside its checkpoints/ folder")
        raise ValueError(f"the checkpoint was trained with another split of the data ({'; '.join(differing)}): the "
                         f"{_SPLIT_READ[stage]} clips would include clips the model trained on or was chosen by, and "
                         f"its scores would be too good. Use the data settings it was trained with: {fix}, without "
                         "overriding those")
    if reads is not None and FITTED_CLIPS in trained:
        _check_fitted_clips(trained[FITTED_CLIPS], reads, here, stage)


def named_alike(fitted: Sequence[str], reads: Sequence[str], trained: Mapping[str, Any], here: Mapping[str, Any],
                what: str, seen: str, fix: str = _SAME_SETTINGS) -> None:
    """Hold clips read from another videos folder than the model's (``here`` against ``trained``) to the keys it was
    fitted on, by name: a copy of the same dataset (on a faster disk, another mount) reads the very clips under
    other paths. UCF101's names identify its videos, so a UCF101 clip of a fitted clip's name is refused
    (``ValueError``); in other datasets a name can recur in other videos, so it is warned about, with the count."""
    alike = sorted(set(reads) & set(fitted))
    if not alike:
        return
    there, now = videos_folder(trained), videos_folder(here)
    found = (f"{len(alike)} of the {len(reads)} {what} under {now} have the names of clips the model was {seen} under "
             f"{there} (such as {alike[0]})")
    if trained["dataset"] == here["dataset"] == "ucf101":
        raise ValueError(f"{found}: UCF101's names identify its videos, so these are the same clips, read from a "
                         f"copy, and the scores would be too good. {fix}")
    rank_zero_warn(f"{found}: if the videos here are copies of those, the scores include clips it was {seen}",
                   stacklevel=5)


def _check_fitted_clips(fitted: Mapping[str, Sequence[str]], reads: Mapping[str, Sequence[str]],
                        here: Mapping[str, Any], stage: str) -> None:
    """Refuse a split ``stage`` reads that holds clips the model was fitted on (same settings, changed videos)."""
    for split in _SPLITS_CHECKED[stage]:
        before = {key for side in _FITTED_BEFORE[split] for key in fitted.get(side, ())}
        again = sorted(set(reads.get(split, ())) & before)
        if again:
            raise ValueError(_fitted_again_message(split, again, len(reads[split]), here))


def _fitted_again_message(split: str, again: Sequence[str], total: int, here: Mapping[str, Any]) -> str:
    """What is wrong (how many, one of them), the likely cause and what to do."""
    folder = videos_folder(here)
    name, seen = _SPLIT_NAMES[split], "trained on" if split == "val" else "trained or validated on"
    clips = f"is a clip the model was {seen}" if len(again) == 1 else f"are clips the model was {seen}"
    if split == "test" and here["dataset"] in ("ucf101", "demo"):
        cause = f"the split lists or the videos under {folder} have changed since training"
    elif split == "test":
        cause = (f"the videos under {folder} have changed since training, and a seeded split over each class's "
                 "recording groups is drawn again when a video is added or removed")
    else:
        cause = (f"the videos under {folder} have changed since training, and the validation groups (and "
                 "data.train_fraction's) are drawn in one seeded draw over the classes in name order, so a video added "
                 "to or removed from one class folder draws those of the classes after it again too")
    return (f"{len(again)} of the {total} {name} clips under {folder} {clips} (such as {again[0]}): {cause}, so the "
            f"{name} scores would be too good. Restore {folder} as it was when the model was trained, or train a new "
            "model on it as it is now (vidrnn fit); to score new videos with this checkpoint, use vidrnn classify")


def validation_rule(val_fraction: float, train_fraction: float, seed: int, given: bool = False) -> str:
    """How the data module carves validation (and a reduced training side) out of the index's training side, or
    that the split gives its validation clips (``given``: an explicit split's ``val/`` folder)."""
    if given:
        rule = "validation: the val/ folder as given (val_fraction plays no part)"
    elif val_fraction > 0:
        rule = f"validation: whole groups, val_fraction={val_fraction} of each class's training groups, seed={seed}"
    else:
        rule = "validation: none (val_fraction=0)"
    if train_fraction < 1.0:
        rule += f"; training: train_fraction={train_fraction} of the remaining groups, seed={seed + 1}"
    return rule


def split_counts(labels: Mapping[str, Sequence[str]], classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """Clips per class and split, ``{class: {split: clips}}``, from each split's clip labels."""
    counted = {split: Counter(names) for split, names in labels.items()}
    return {name: {split: counts[name] for split, counts in counted.items()} for name in classes}


def split_summary(rule: str, counts: Mapping[str, Mapping[str, int]]) -> str:
    """One line: the rule, the clips of each split, and (for a dozen classes or fewer) each class's, as
    ``class train/val/test``."""
    splits = list(next(iter(counts.values()), {}))
    totals = ", ".join(f"{split} {sum(per[split] for per in counts.values())}" for split in splits)
    line = f"split: {rule}; clips: {totals}"
    if len(counts) <= _CLASSES_SHOWN:
        line += (f"; per class ({'/'.join(splits)}): "
                 + ", ".join(f"{name} {'/'.join(str(per[split]) for split in splits)}" for name, per in counts.items()))
    return line


def write_split_record(path: str | os.PathLike, rule: str, root: str | os.PathLike,
                       counts: Mapping[str, Mapping[str, int]], clip_lists: Mapping[str, Sequence[str]],
                       copies: Mapping[str, Sequence[Any]], missing: Sequence[str] = (),
                       unreadable: Mapping[str, Mapping[str, str]] | None = None, *,
                       too_short: Mapping[str, Mapping[str, str]] | None = None,
                       cut_short: Mapping[str, Mapping[str, str]] | None = None,
                       test_groups: Mapping[str, tuple[str, str | None]] | None = None,
                       unlisted: Sequence[str] = ()) -> None:
    """Keep the split a run read in ``path`` (JSON: the rule, the videos' root, clips per split and per class, each
    split's clip keys — to compare with another run's —, the byte-identical copies of :func:`identical_copies`, the
    clips its split lists name that are not on disk, ``missing``, the files and class folders on disk they do not name,
    not read, ``unlisted``, the clips each split drew but left out as
    unreadable, ``unreadable``: ``{split: {clip: reason}}`` (counts and clip lists hold the clips read alone), those
    left out of an order task as too short, ``too_short``: ``{split: {clip: its cached frames and those needed}}``,
    the clips read that held far fewer frames than their containers state, ``cut_short``: ``{split: {clip: the frames
    found and stated}}`` (a truncated file, read over the frames it holds), and each test clip's ``[class, recording group]``, ``test_groups``: the units the split kept whole, which a
    bootstrap over the test clips resamples whole)."""
    splits = list(next(iter(counts.values()), {}))
    record = {"rule": rule, "root": str(root),
              "clips": {split: sum(per[split] for per in counts.values()) for split in splits},
              "per_class": counts, "clip_lists": {split: list(keys) for split, keys in clip_lists.items()},
              "identical_copies": copies, "missing": list(missing), "unlisted": list(unlisted),
              "unreadable": {split: dict(clips) for split, clips in (unreadable or {}).items()},
              "too_short": {split: dict(clips) for split, clips in (too_short or {}).items()},
              "cut_short": {split: dict(clips) for split, clips in (cut_short or {}).items()},
              "test_groups": {key: list(unit) for key, unit in (test_groups or {}).items()}}
    atomic_write_bytes(Path(path), (json.dumps(record, indent=1) + "\n").encode())


def identical_copies(clip_lists: Mapping[str, Sequence[str]], labels: Mapping[str, Sequence[str]],
                     digests: Mapping[str, str]) -> dict[str, list[Any]]:
    """Byte-identical videos across a split, by the SHA-256 of their bytes (``digests``, by clip key: the feature
    cache records it as it decodes; a clip without one, from an older cache, is passed over).

    ``clip_lists`` and ``labels`` give each split's clip keys and their labels, in the same order. Returns one entry
    per set of identical videos, each split's clips sorted: ``{"test": [{"test": [clip, ...], "train": [copy, ...]},
    ...], "val": [{"val": [...], "train": [...]}, ...], "test_val": [{"test": [...], "val": [...]}, ...],
    "different_labels": [[clip, ...], ...]}``: each set holding test or validation clips and training clips; each
    holding test and validation clips (validation chose the checkpoint the test scores); and each that carries more
    than one label. One entry per set, not per clip: a layout of many copies of a few videos lists each copy once.
    """
    same: defaultdict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for split, keys in clip_lists.items():
        for key, label in zip(keys, labels[split]):
            if key in digests:
                same[digests[key]].append((split, key, label))
    copies: dict[str, list[Any]] = {"test": [], "val": [], "test_val": [], "different_labels": []}
    for clips in (clips for clips in same.values() if len(clips) > 1):
        by_split: defaultdict[str, list[str]] = defaultdict(list)
        for split, key, _ in clips:
            by_split[split].append(key)
        for kind, held, source in _COPY_SIDES:
            if by_split[held] and by_split[source]:
                copies[kind].append({held: sorted(by_split[held]), source: sorted(by_split[source])})
        if len({label for _, _, label in clips}) > 1:
            copies["different_labels"].append(sorted(key for _, key, _ in clips))
    return {kind: sorted(found, key=_first_clip) for kind, found in copies.items()}


#: Each kind of :func:`identical_copies` across a split: the split whose clips it counts and the split they copy.
_COPY_SIDES = (("test", "test", "train"), ("val", "val", "train"), ("test_val", "test", "val"))


def _first_clip(entry: Mapping[str, Sequence[str]] | Sequence[str]) -> str:
    """What sorts the sets of :func:`identical_copies`: the first clip of the split they count."""
    return next(iter(entry.values()))[0] if isinstance(entry, Mapping) else entry[0]


#: The copies across a split that :func:`copy_warnings` says: their kind in :func:`identical_copies`, the split they are
#: in, the split they copy and what that split did with the same video.
_COPY_KINDS = (("test", "test", "training", "the model trained on"),
               ("val", "validation", "training", "the model trained on"),
               ("test_val", "test", "validation", "the checkpoint was chosen on"))


def copy_warnings(copies: Mapping[str, Sequence[Any]], root: str | os.PathLike) -> list[str]:
    """What :func:`identical_copies` found, as warnings: how many, the first few, what it does to the scores and what
    to do. Not refusals: download duplicates are common, and whether two files are one recording is the user's call."""
    messages = []
    for (kind, name, source, seen), (_, held, _) in zip(_COPY_KINDS, _COPY_SIDES):
        sets = copies[kind]
        count = sum(len(entry[held]) for entry in sets)
        if count:
            clips, are, it = (("clip", f"is a byte-identical copy of a {source} clip", "it") if count == 1 else
                              ("clips", f"are byte-identical copies of {source} clips", "them"))
            grouped = f", in {len(sets)} sets of byte-identical videos," if len(sets) < count else ""
            shown = _shown([[clip for side in entry.values() for clip in side] for entry in sets])
            messages.append(f"{count} {name} {clips} under {root}{grouped} {are} ({shown}): the {name} scores "
                            f"are optimistic by {it}, as {seen} the same video. splits.json lists every copy "
                            "(identical_copies); remove the copies before training to score only unseen videos")
    mixed = copies["different_labels"]
    if mixed:
        videos_have = "video has" if len(mixed) == 1 else "videos have"
        messages.append(f"{len(mixed)} {videos_have} byte-identical copies under other labels in {root} "
                        f"({_shown(mixed)}): label noise, the same video taught as two classes. splits.json lists "
                        "them (identical_copies); keep one copy, in the class it belongs to")
    return messages


def _shown(sets: Sequence[Sequence[str]]) -> str:
    """The first few sets of identical clips, ``a = b = c``, each cut to its first few clips, and how many more: a
    set of thousands of copies is a count, not a list."""
    def one_set(clips: Sequence[str]) -> str:
        hidden = len(clips) - _CLIPS_SHOWN
        return " = ".join(clips[:_CLIPS_SHOWN]) + (f" = {hidden} more {'copy' if hidden == 1 else 'copies'}"
                                                   if hidden > 0 else "")

    hidden = len(sets) - _COPIES_SHOWN
    return "; ".join(one_set(clips) for clips in sets[:_COPIES_SHOWN]) + (
        f"; and {counted(hidden, 'more set')}" if hidden > 0 else "")

"""Which clips of a split a run can use, and a clear end where what is left cannot serve it.

A clip whose video could not be read has no features and is left out; a fit that trains on the rest is a success, but
one that says nothing leaves the user to find out from shrunken counts which clips are gone and why. So they are said
once, with counts per split and the first few paths with their reasons (all of them are in the cache's
``errors.json``). When nothing is left of a split a stage needs, or a class is left without a clip to train on, the
run ends before training, naming the clips and what to do: a classifier built with a class it never trains on would
report it 0/0/0 beside a perfect accuracy, and ``vidrnn classify`` would offer it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.features import FeatureCache

__all__ = ["STAGE_SPLITS", "UnusableData", "UsableClips", "require_trained_classes"]

logger = logging.getLogger(__name__)

#: The splits each stage reads; a fit's validation split only where it has clips (``val_fraction`` 0 gives none).
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}

#: What a split is called in a message.
_SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}

#: Clips named, with their reasons, in a message.
_EXAMPLES = 3

#: What a clip without features and without a recorded error lacks: prepare_data has not extracted it.
_NOT_EXTRACTED = "no features cached (not extracted: prepare_data has not run)"


class UnusableData(ValueError):
    """The data cannot serve the run: a split it needs has no usable clip, or a class has none to train on. The
    message names the clips and what to do; ``vidrnn fit|validate|test|predict`` end with it, without a traceback."""


@dataclass
class UsableClips:
    """Each split's clips as the feature cache can serve them: ``usable`` (in index order), and ``unreadable`` —
    without features, their reasons in ``errors`` (the cache's, by key) or not extracted."""

    index: DatasetIndex
    errors_path: Path
    errors: Mapping[str, str]
    usable: dict[str, list[VideoRecord]]
    unreadable: dict[str, list[VideoRecord]]

    @classmethod
    def sort(cls, splits: Mapping[str, Sequence[VideoRecord]], index: DatasetIndex,
             cache: FeatureCache) -> UsableClips:
        """Sort each split's clips by whether ``cache`` holds their features."""
        entries = cache.entries()
        usable = {name: [r for r in records if index.key(r) in entries] for name, records in splits.items()}
        unreadable = {name: [r for r in records if index.key(r) not in entries] for name, records in splits.items()}
        return cls(index, cache.dir / "errors.json", cache.errors(), usable, unreadable)

    def require(self, splits: Sequence[str]) -> None:
        """Refuse (:class:`UnusableData`) when any of ``splits`` had clips and none of them can be used — saying so of
        the whole dataset when none of its clips can."""
        emptied = [split for split in splits if self.unreadable.get(split) and not self.usable[split]]
        if not emptied:
            return
        if not any(self.usable.values()):
            clips = [record for records in self.unreadable.values() for record in records]
            said = f"none of the {len(clips)} clips under {self.index.root} could be read"
        else:
            clips = self.unreadable[emptied[0]]
            said = (f"no {_SPLIT_NAMES[emptied[0]]} clip under {self.index.root} can be used: {len(clips)} of "
                    f"{len(clips)} could not be read")
        raise UnusableData(f"{said} ({self._reasons(clips)}; every reason in {self.errors_path}). {_FIX_VIDEOS}")

    def require_classes(self) -> None:
        """Refuse (:class:`UnusableData`) a fit that would leave a class of the index without a readable training
        clip, naming each such class, some of its clips with their reasons, and its folder."""
        trained = {record.label for record in self.usable["train"]}
        dead = [label for label in self.index.classes if label not in trained]
        if not dead:
            return
        said = "; ".join(
            f"class {label!r}: {len(clips)} training clip{'' if len(clips) == 1 else 's'}, none readable "
            f"({self._reasons(clips)})"
            for label in dead for clips in [[r for r in self.unreadable["train"] if r.label == label]])
        fix = _pick(dead, "its videos, or remove its folder", "their videos, or remove their folders")
        raise UnusableData(f"{said}; every reason in {self.errors_path}. A {_never_trained(dead)}: fix {fix} "
                           f"({_class_folders(self.index, dead)})")

    @rank_zero_only
    def report(self) -> None:
        """Say once (rank 0) which clips are left out: how many per split, the first few with their reasons, and
        where every reason is."""
        left_out = [(split, record) for split, records in self.unreadable.items() for record in records]
        if not left_out:
            return
        total = sum(len(records) for records in self.usable.values()) + len(left_out)
        shown = _first([f"{self.index.key(record)} ({split}): {self._reason(record)}" for split, record in left_out])
        per_split = ", ".join(f"{split} {len(records)}" for split, records in self.unreadable.items())
        logger.warning("%d of %d clips under %s could not be read and are left out (%s): %s; every reason in %s (%s)",
                       len(left_out), total, self.index.root, per_split, shown, self.errors_path, _DECODED_AGAIN)

    def _reason(self, record: VideoRecord) -> str:
        return self.errors.get(self.index.key(record), _NOT_EXTRACTED)

    def _reasons(self, records: Sequence[VideoRecord]) -> str:
        """The first few of ``records`` with their reasons, for a message."""
        return _first([f"{self.index.key(record)}: {self._reason(record)}" for record in records])


#: When a video that failed is decoded again.
_DECODED_AGAIN = "a video that failed is decoded again once its file changes, or with data.retry_failed: true"

#: What to do about a split whose videos could not be read.
_FIX_VIDEOS = f"Fix or replace those videos ({_DECODED_AGAIN}), or give data.root a folder of readable ones"


def require_trained_classes(index: DatasetIndex, train: Sequence[VideoRecord]) -> None:
    """Refuse (:class:`UnusableData`) a fit whose training clips ``train`` leave a class of ``index`` without any
    (a class only in an explicit split's ``test/`` or ``val/``): known from the index, before anything is extracted."""
    trained = {record.label for record in train}
    dead = [label for label in index.classes if label not in trained]
    if not dead:
        return
    said = (f"class {dead[0]!r} has no training clips ({_held_out(index, dead[0])})" if len(dead) == 1 else
            f"classes {', '.join(f'{label!r} ({_held_out(index, label)})' for label in dead)} have no training clips")
    fix = _pick(dead, "Give it training clips or remove its folder", "Give them training clips or remove their folders")
    raise UnusableData(f"{said}: a {_never_trained(dead)}. {fix} ({_class_folders(index, dead)})")


def _pick(labels: Sequence[str], one: str, many: str) -> str:
    """The words for one class or for several."""
    return one if len(labels) == 1 else many


def _never_trained(dead: Sequence[str]) -> str:
    """Why a class without training clips is refused."""
    return (f"classifier would be built with {_pick(dead, 'a class', 'classes')} it never trains on, and would offer "
            f"{_pick(dead, 'it', 'them')}")


def _first(said: Sequence[str]) -> str:
    """The first few of ``said``, for a message, and how many more there are."""
    more = f" and {len(said) - _EXAMPLES} more" if len(said) > _EXAMPLES else ""
    return "; ".join(said[:_EXAMPLES]) + more


def _held_out(index: DatasetIndex, label: str) -> str:
    """``test 1, val 2``: where a class's clips are, when none is in training."""
    counts = {split: sum(r.label == label for r in index.split(split)) for split in ("val", "test")}
    return ", ".join(f"{split} {count}" for split, count in counts.items() if count)


def _class_folders(index: DatasetIndex, labels: Sequence[str]) -> str:
    """The folders that hold ``labels``' clips (``root/<class>``, or ``root/<split>/<class>`` in an explicit split)."""
    folders: list[Path] = []
    for record in index.records:
        if record.label in labels:
            parts = record.path.relative_to(index.root).parts
            folder = index.root.joinpath(*parts[:parts.index(record.label) + 1])
            folders += [folder] if folder not in folders else []
    return ", ".join(str(folder) for folder in folders)

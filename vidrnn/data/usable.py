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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.features import FeatureCache
from vidrnn.text import counted, first_few

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
    """Each split's clips as the feature cache can serve them: ``usable`` (in index order); ``unreadable`` — without
    features, their reasons in ``errors`` (the cache's, by key) or not extracted; and ``short`` — on a temporal-order
    ``task``, clips with fewer cached frames than ``shortest``, whose altered copy could not differ from them
    (:func:`vidrnn.data.order.shortest_alterable`); ``frames``: the cached frames of each clip, by key;
    ``cut_short``: what the cache recorded of each clip that held far fewer frames than its container states, by key."""

    index: DatasetIndex
    errors_path: Path
    errors: Mapping[str, str]
    usable: dict[str, list[VideoRecord]]
    unreadable: dict[str, list[VideoRecord]]
    short: dict[str, list[VideoRecord]]
    shortest: int = 1
    task: str = ""
    frames: Mapping[str, int] = field(default_factory=dict)
    cut_short: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def sort(cls, splits: Mapping[str, Sequence[VideoRecord]], index: DatasetIndex, cache: FeatureCache,
             shortest: int = 1, task: str = "") -> UsableClips:
        """Sort each split's clips by whether ``cache`` holds their features, and (``shortest`` above 1, for the
        order ``task`` so named) at least ``shortest`` frames of them."""
        frames = {key: entry["shape"][0] for key, entry in cache.entries().items()}

        def where(keep: Callable[[int | None], bool]) -> dict[str, list[VideoRecord]]:
            return {name: [r for r in records if keep(frames.get(index.key(r)))] for name, records in splits.items()}

        return cls(index, cache.dir / "errors.json", cache.errors(),
                   usable=where(lambda count: count is not None and count >= shortest),
                   unreadable=where(lambda count: count is None),
                   short=where(lambda count: count is not None and count < shortest), shortest=shortest, task=task,
                   frames=frames, cut_short={key: str(shortfall) for key, shortfall in cache.cut_short().items()})

    def require(self, splits: Sequence[str]) -> None:
        """Refuse (:class:`UnusableData`) when any of ``splits`` had clips and none of them can be used — saying so of
        the whole dataset when none of its clips can."""
        emptied = [split for split in splits if (self.unreadable.get(split) or self.short.get(split))
                   and not self.usable[split]]
        if not emptied:
            return
        whole = not any(self.usable.values())
        chosen = list(self.unreadable) if whole else emptied[:1]
        unreadable = [record for split in chosen for record in self.unreadable[split]]
        short = [record for split in chosen for record in self.short[split]]
        what = "clip" if whole else f"{_SPLIT_NAMES[emptied[0]]} clip"
        fixes = [_FIX_VIDEOS] if unreadable else []
        fixes += [f"{self.task[0].upper()}{self.task[1:]} needs clips of at least {self.shortest} frames: give it "
                  "longer videos, or cache more of each one's frames (data.sampling)"] if short else []
        raise UnusableData(f"no {what} under {self.index.root} can be used: "
                           f"{self._account(unreadable, short, len(unreadable) + len(short))}. {' '.join(fixes)}")

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
        """Say (on rank 0) which clips are left out — those that could not be read, and those too short for the order
        task — each with how many per split and the first few (with their reasons, and where all of them are)."""
        total = sum(len(records) for kind in (self.usable, self.unreadable, self.short) for records in kind.values())
        unreadable = [(split, record) for split, records in self.unreadable.items() for record in records]
        if unreadable:
            shown = first_few([f"{self.index.key(record)} ({split}): {self._reason(record)}"
                               for split, record in unreadable], _EXAMPLES, "; ")
            logger.warning("%d of %d clips under %s could not be read and are left out (%s): %s; every reason in %s "
                           "(%s)", len(unreadable), total, self.index.root, _per_split(self.unreadable), shown,
                           self.errors_path, _DECODED_AGAIN)
        short = [record for records in self.short.values() for record in records]
        if short:
            logger.warning("%d of %d clips under %s are left out of %s: with fewer than %d cached frames, a clip's "
                           "altered copy could not differ from it (%s): %s", len(short), total, self.index.root,
                           self.task, self.shortest, _per_split(self.short),
                           first_few([self.index.key(record) for record in short], _EXAMPLES, "; "))

    def unreadable_reasons(self) -> dict[str, dict[str, str]]:
        """Each split's clips left out as unreadable, by key, with the reason (``splits.json`` keeps them)."""
        return {split: {self.index.key(record): self._reason(record) for record in records}
                for split, records in self.unreadable.items()}

    def too_short_reasons(self) -> dict[str, dict[str, str]]:
        """Each split's clips left out as too short for the order task, by key, with their cached frames and the frames
        it needs (``splits.json`` keeps them, as it keeps the unreadable ones: the warning alone left no trace)."""
        return {split: {self.index.key(record): self._shortness(record) for record in records}
                for split, records in self.short.items()}

    def cut_short_notes(self) -> dict[str, dict[str, str]]:
        """Each split's usable clips that held far fewer frames than their containers state, by key, with what was
        found (``splits.json`` keeps them: they were said once, as they were extracted, not at every read)."""
        return {split: {key: self.cut_short[key] for key in map(self.index.key, records) if key in self.cut_short}
                for split, records in self.usable.items()}

    def _shortness(self, record: VideoRecord) -> str:
        count = self.frames[self.index.key(record)]
        return f"{count} cached frame{'' if count == 1 else 's'}, fewer than the {self.shortest} {self.task} needs"

    def _account(self, unreadable: Sequence[VideoRecord], short: Sequence[VideoRecord], total: int) -> str:
        """How many of ``total`` clips could not be read and how many are too short, with the first few of each."""
        said = [f"{len(unreadable)} of {total} could not be read ({self._reasons(unreadable)}; every reason in "
                f"{self.errors_path})"] if unreadable else []
        keys = first_few([self.index.key(record) for record in short], _EXAMPLES, "; ")
        said += [f"{len(short)} of {total} are too short for {self.task}, with fewer than {self.shortest} cached "
                 f"frames ({keys})"] if short else []
        return "; ".join(said)

    def _reason(self, record: VideoRecord) -> str:
        return self.errors.get(self.index.key(record), _NOT_EXTRACTED)

    def _reasons(self, records: Sequence[VideoRecord]) -> str:
        """The first few of ``records`` with their reasons, for a message."""
        return first_few([f"{self.index.key(record)}: {self._reason(record)}" for record in records], _EXAMPLES, "; ")


#: When a video that failed is decoded again.
_DECODED_AGAIN = ("a video that failed is decoded again once its file changes (one this user could not read, once it "
                  "can), or with data.retry_failed: true")

#: What to do about a split whose videos could not be read.
_FIX_VIDEOS = f"Fix or replace those videos ({_DECODED_AGAIN}), or give data.root a folder of readable ones"


def require_trained_classes(index: DatasetIndex, train: Sequence[VideoRecord]) -> None:
    """Refuse (:class:`UnusableData`) a fit whose training clips ``train`` leave a class of ``index`` without any
    (a class only in an explicit split's ``test/`` or ``val/``): known from the index, before anything is extracted."""
    trained = {record.label for record in train}
    dead = [label for label in index.classes if label not in trained]
    if not dead:
        return
    said = (f"class {dead[0]!r} has {_no_training_clips(index, dead[0])} ({_held_out(index, dead[0])})"
            if len(dead) == 1 else
            f"classes {', '.join(f'{label!r} ({_held_out(index, label)})' for label in dead)} have no training clips")
    fix = _pick(dead, "Give it training clips or remove its folder", "Give them training clips or remove their folders")
    raise UnusableData(f"{said}: a {_never_trained(dead)}. {fix} ({_class_folders(index, dead)})")


def _no_training_clips(index: DatasetIndex, label: str) -> str:
    """``no training clips``, or ``no clips in any split`` for a class without a clip."""
    return "no training clips" if _has_clips(index, label) else "no clips in any split"


def _has_clips(index: DatasetIndex, label: str) -> bool:
    return any(record.label == label for record in index.records)


def _pick(labels: Sequence[str], one: str, many: str) -> str:
    """The words for one class or for several."""
    return one if len(labels) == 1 else many


def _never_trained(dead: Sequence[str]) -> str:
    """Why a class without training clips is refused."""
    return (f"classifier would be built with {_pick(dead, 'a class', 'classes')} it never trains on, and would offer "
            f"{_pick(dead, 'it', 'them')}")


def _per_split(records: Mapping[str, Sequence[VideoRecord]]) -> str:
    """``train 1, val 0, test 2``."""
    return ", ".join(f"{split} {len(clips)}" for split, clips in records.items())


def _held_out(index: DatasetIndex, label: str) -> str:
    """``test 1, val 2``: where a class's clips are, when none is in training; for a class with no clip at all
    (UCF101: a folder whose clips the split lists do not name, or name but the disk lacks), why."""
    counts = {split: sum(r.label == label for r in index.split(split)) for split in ("val", "test")}
    if any(counts.values()):
        return ", ".join(f"{split} {count}" for split, count in counts.items() if count)
    return _why_no_clips(index, label)


def _why_no_clips(index: DatasetIndex, label: str) -> str:
    """What the split lists name of a class without clips and what its folder holds that they do not name."""
    folder = index.root / label
    missing = sum(path.parent == folder for path in index.missing)
    unlisted = sum(path.parent == folder for path in index.unlisted)
    listed = f"name {counted(missing, 'clip')} of it, missing from the disk" if missing else "name none of it"
    held = f"holds {counted(unlisted, 'file')} they do not name" if unlisted else "holds none"
    return f"the split lists {listed}, and its folder {held}"


def _class_folders(index: DatasetIndex, labels: Sequence[str]) -> str:
    """The folders that hold ``labels``' clips (``root/<class>``, or ``root/<split>/<class>`` in an explicit split);
    a class without clips, its folder ``root/<class>`` (UCF101's, the one dataset whose classes may have none)."""
    folders: list[Path] = []
    for record in index.records:
        if record.label in labels:
            parts = record.path.relative_to(index.root).parts
            folder = index.root.joinpath(*parts[:parts.index(record.label) + 1])
            folders += [folder] if folder not in folders else []
    folders += [index.root / label for label in labels if not _has_clips(index, label)]
    return ", ".join(str(folder) for folder in folders)

"""The records every dataset index produces: what a clip is, which class, which recording group, which split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vidrnn.embedding import VideoItem

__all__ = ["DatasetIndex", "VideoRecord"]


@dataclass(frozen=True)
class VideoRecord:
    """One labelled clip.

    ``group`` names the recording session the clip came from (UCF101's ``_gXX_``): clips of one group look alike, so
    honest splits keep a group on one side. ``None`` when no group can be derived.
    """

    path: Path
    label: str
    group: str | None
    split: str


@dataclass
class DatasetIndex:
    """The clips of a dataset, their classes and how the split was made.

    ``classes`` fixes the label order (index ``i`` of a model's output is ``classes[i]``). ``missing`` lists clips the
    split files name but the disk lacks, ``unlisted`` files and folders on disk they do not name (neither is read);
    ``split_rule`` records how train and test were separated, so a result can
    always be traced back to its split.
    """

    root: Path
    classes: list[str]
    records: list[VideoRecord]
    split_rule: str
    missing: list[Path] = field(default_factory=list)
    unlisted: list[Path] = field(default_factory=list)

    def split(self, name: str) -> list[VideoRecord]:
        """The records of one split (``"train"``, ``"test"``, ...), in index order."""
        return [record for record in self.records if record.split == name]

    def key(self, record: VideoRecord) -> str:
        """The record's key in the feature cache: its path relative to the root."""
        return record.path.relative_to(self.root).as_posix()

    def recording_groups(self, keys: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """Each clip key's class and recording group (``None``: it has none, and is a unit of its own): the units its
        split keeps whole, which an analysis of the scores must resample whole too (``splits.json``)."""
        records = {self.key(record): record for record in self.records}
        return {key: (records[key].label, records[key].group) for key in keys}

    def label_index(self, record: VideoRecord) -> int:
        return self.classes.index(record.label)

    def counts(self) -> dict[str, int]:
        """Number of clips per split."""
        return dict(Counter(record.split for record in self.records))

    def video_items(self) -> list[VideoItem]:
        """Every clip (all splits) as the feature extractor takes it, keyed by its path relative to the root."""
        return [VideoItem(record.path, self.key(record), record.label) for record in self.records]

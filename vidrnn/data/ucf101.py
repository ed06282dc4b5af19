"""UCF101, indexed from its official split files.

UCF101 clips are cut from longer recordings, and the clips of one recording (its *group*, the ``_gXX_`` in every file
name) share actor, background and camera. A random split puts near-copies of a test clip into training and inflates
accuracy, so published results use the three official folds, which keep every group on one side. This module only
ever reads those folds; it never invents a split.

The official download unpacks into two folders side by side::

    UCF-101/<Class>/v_<Class>_gGG_cCC.avi
    ucfTrainTestlist/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt   (CRLF line endings)

Working on part of the dataset is normal (a few classes for a quick experiment), so the classes are those of
``classInd.txt`` that have a folder on disk. Clips of absent classes are out of scope; a clip the lists name for a
present class but the disk lacks is a real gap and is reported in :attr:`DatasetIndex.missing`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath

from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.distributed import warn_once
from vidrnn.text import first_few, text_lines

__all__ = ["FOLDS", "SPLITS_FOLDER", "VIDEOS_FOLDER", "check_fold", "official_split_rule", "ucf101_index"]

FOLDS = (1, 2, 3)
VIDEOS_FOLDER = "UCF-101"
SPLITS_FOLDER = "ucfTrainTestlist"

_GROUP = re.compile(r"_(g\d+)_c\d+")

logger = logging.getLogger(__name__)


def ucf101_index(root: str | os.PathLike, splits_dir: str | os.PathLike | None = None, fold: int = 1) -> DatasetIndex:
    """Index the clips of one official UCF101 fold, as ``"train"`` and ``"test"`` records.

    ``root`` may be the ``UCF-101`` folder itself or the folder that holds it (if ``root/UCF-101`` exists it is used),
    so both the unpacked download and a bare video folder work. ``splits_dir`` defaults to ``ucfTrainTestlist`` beside
    the ``UCF-101`` folder, where the official download puts it.

    Records follow the order of the list files, train first. Each record's ``group`` is the file name's ``gXX``; the
    official folds put a group number on the same side in every class, so groups are disjoint across train and test
    by name alone, and lists that break this raise rather than yield a leaking split.
    """
    check_fold(fold)
    videos_root = _videos_root(Path(root).expanduser())
    splits_dir = default_splits_dir(videos_root) if splits_dir is None else Path(splits_dir).expanduser()
    if not splits_dir.is_dir():
        raise FileNotFoundError(f"{splits_dir / 'classInd.txt'}: {_SPLIT_FILE_NOT_FOUND}; if {videos_root} holds one "
                                "folder per class, use --dataset folders (vidrnn extract) or --data.dataset folders "
                                "(vidrnn fit)")
    listed_classes = _read_class_ind(_split_file(splits_dir, "classInd.txt"))
    train_list = _split_file(splits_dir, f"trainlist0{fold}.txt")
    test_list = _split_file(splits_dir, f"testlist0{fold}.txt")

    classes = [name for name in listed_classes if (videos_root / name).is_dir()]
    if not classes:
        raise FileNotFoundError(
            f"{videos_root}: none of the {len(listed_classes)} classes of classInd.txt has a folder here; "
            f"expected {videos_root}/<Class>/v_<Class>_gGG_cCC.avi"
        )
    records, missing = _records(videos_root, {"train": train_list, "test": test_list}, set(classes))
    _check_groups_disjoint(records, splits_dir, fold)
    rule = official_split_rule(fold, len(classes), len(listed_classes))
    if missing:
        warn_once(logger, "%d clips listed for split %d are missing under %s: %s; they are left out, so the split is "
                  "not the full official one (a run keeps every one in its splits.json, missing)", len(missing), fold,
                  videos_root, first_few([path.relative_to(videos_root).as_posix() for path in missing], 10))
        rule += f", {len(missing)} listed clip{'s' * (len(missing) > 1)} missing"
    return DatasetIndex(root=videos_root, classes=classes, records=records, split_rule=rule, missing=missing)


def check_fold(fold: int) -> None:
    """Refuse a fold UCF101's split lists do not have."""
    if fold not in FOLDS:
        raise ValueError(f"fold must be one of {FOLDS} (UCF101 has three official splits), got {fold!r}")


def official_split_rule(fold: int, present: int, listed: int) -> str:
    """How an index of ``present`` of the ``listed`` classes was split: the record every run reports."""
    return f"UCF101 official split {fold} ({present} of {listed} classes)"


def _videos_root(root: Path) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: UCF101 root not found; give the {VIDEOS_FOLDER} folder (holding <Class>/v_*.avi) or its parent"
        )
    nested = root / VIDEOS_FOLDER
    return nested if nested.is_dir() else root


def default_splits_dir(videos_root: Path) -> Path:
    """``ucfTrainTestlist`` beside the ``UCF-101`` folder, or beside the folder a symbolic link to it points at: a
    link such as ``data/UCF101 -> /datasets/UCF101/UCF-101`` leaves the split lists beside the real folder, not the
    link."""
    beside = videos_root.parent / SPLITS_FOLDER
    if beside.is_dir():
        return beside
    beside_target = videos_root.resolve().parent / SPLITS_FOLDER
    return beside_target if beside_target.is_dir() else beside


_SPLIT_FILE_NOT_FOUND = (f"UCF101 split file not found; splits_dir must be the official {SPLITS_FOLDER} folder "
                         "(classInd.txt, trainlist01-03.txt, testlist01-03.txt)")


def _split_file(splits_dir: Path, name: str) -> Path:
    path = splits_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {_SPLIT_FILE_NOT_FOUND}")
    return path


def _read_class_ind(path: Path) -> list[str]:
    """Class names in ``classInd.txt`` order (lines ``<index> <Class>``), which fixes the label order."""
    return [line.split()[-1] for line in text_lines(path) if line.strip()]


def _read_list(path: Path) -> list[PurePosixPath]:
    """Clip paths of a train or test list; a train line's trailing class number is redundant with its folder.

    A clip must stay inside the videos root (its path becomes a key of the feature cache, and a file there): a line
    with ``..`` or an absolute path is refused, naming the line."""
    clips = []
    for number, line in enumerate(text_lines(path), start=1):
        line = line.strip()
        if not line:
            continue
        clip = PurePosixPath(line.split()[0].replace("\\", "/"))
        if clip.is_absolute() or ".." in clip.parts or len(clip.parts) != 2:
            raise ValueError(f"{path}:{number}: {line!r} is not Class/video (a path inside the videos folder)")
        clips.append(clip)
    return clips


def _records(
    videos_root: Path, lists: dict[str, Path], classes: set[str]
) -> tuple[list[VideoRecord], list[Path]]:
    records: list[VideoRecord] = []
    missing: list[Path] = []
    for split, list_file in lists.items():
        for clip in _read_list(list_file):
            label = clip.parts[0]
            if label not in classes:
                continue
            path = videos_root.joinpath(*clip.parts)
            if path.is_file():
                records.append(VideoRecord(path, label, _group(clip, list_file), split))
            else:
                missing.append(path)
    return records, missing


def _group(clip: PurePosixPath, list_file: Path) -> str:
    match = _GROUP.search(clip.name)
    if match is None:
        raise ValueError(f"{list_file}: clip {clip} has no _gGG_cCC_ in its name, so its group is unknown")
    return match.group(1)


def _check_groups_disjoint(records: list[VideoRecord], splits_dir: Path, fold: int) -> None:
    train_groups = {record.group for record in records if record.split == "train"}
    test_groups = {record.group for record in records if record.split == "test"}
    shared = sorted(train_groups & test_groups)
    if shared:
        raise ValueError(
            f"{splits_dir}: groups {shared} appear in both trainlist0{fold}.txt and testlist0{fold}.txt; the official "
            "lists never split a group, so these files are edited or mismatched (restore the official lists)"
        )

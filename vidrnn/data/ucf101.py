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
present class but the disk lacks is a real gap and is reported in :attr:`DatasetIndex.missing`. What the lists do not
name — a file in a class folder that is in neither list of the fold, a folder that is no class of ``classInd.txt`` —
is not read, and is said once and kept in :attr:`DatasetIndex.unlisted`: a clip added by hand would otherwise be
left out without a word.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath

from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.distributed import warn_once
from vidrnn.text import counted, first_few, text_lines
from vidrnn.video import VIDEO_EXTENSIONS, UnreadableFolders, is_hidden, listing_error, unfollowable

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
    listed_classes = _read_class_ind(_split_file(splits_dir, "classInd.txt", videos_root))
    train_list = _split_file(splits_dir, f"trainlist0{fold}.txt", videos_root)
    test_list = _split_file(splits_dir, f"testlist0{fold}.txt", videos_root)

    _refuse_unreadable_classes(videos_root, listed_classes)
    classes = [name for name in listed_classes if (videos_root / name).is_dir()]
    if not classes:
        raise FileNotFoundError(
            f"{videos_root}: none of the {len(listed_classes)} classes of classInd.txt has a folder here; "
            f"expected {videos_root}/<Class>/v_<Class>_gGG_cCC.avi"
        )
    lists = {"train": _read_list(train_list), "test": _read_list(test_list)}
    records, missing = _records(videos_root, lists, {"train": train_list, "test": test_list}, set(classes))
    _check_groups_disjoint(records, splits_dir, fold)
    rule = official_split_rule(fold, len(classes), len(listed_classes))
    if missing:
        warn_once(logger, "%d clips listed for split %d are missing under %s: %s; they are left out, so the split is "
                  "not the full official one (a run keeps every one in its splits.json, missing)", len(missing), fold,
                  videos_root, first_few([path.relative_to(videos_root).as_posix() for path in missing], 10))
        rule += f", {len(missing)} listed clip{'s' * (len(missing) > 1)} missing"
    unlisted = _unlisted(videos_root, classes, set(listed_classes) | {splits_dir.name}, lists)
    _warn_unlisted(videos_root, unlisted, fold)
    return DatasetIndex(root=videos_root, classes=classes, records=records, split_rule=rule, missing=missing,
                        unlisted=unlisted)


def _refuse_unreadable_classes(videos_root: Path, listed_classes: list[str]) -> None:
    """Refuse (:class:`~vidrnn.video.UnreadableFolders`) listed classes whose folder is a link that leads nowhere (a
    disk not mounted) or that this user may not list: the first would be taken for a class not on disk, the run
    training on the others without a word; the second's clips for missing ones."""
    problems = []
    for name in listed_classes:
        folder = videos_root / name
        problem = unfollowable(folder)
        if problem is None and folder.is_dir():
            try:
                os.scandir(folder).close()
            except OSError as error:
                problem = listing_error(error)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise UnreadableFolders(videos_root, problems)


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


def _split_file(splits_dir: Path, name: str, videos_root: Path) -> Path:
    path = splits_dir / name
    if not path.is_file():
        raise FileNotFoundError(_split_file_not_found(path, videos_root))
    return path


def _split_file_not_found(path: Path, videos_root: Path) -> str:
    """Why ``path`` is needed and how to give it, by the options each command has: the official lists first, as only
    they give the published fold; the folders dataset last, as it gives that fold up (a folder of one's own class
    folders given to a UCF101 command ends here too)."""
    return (f"{path}: UCF101 split file not found. Put the official {SPLITS_FOLDER} folder (classInd.txt, "
            f"trainlist01-03.txt, testlist01-03.txt) beside {videos_root}, or give where it is: --data.splits DIR "
            "(vidrnn fit, validate, test, predict) or --splits DIR (vidrnn extract). Without the official lists, "
            f"--data.dataset folders (--dataset folders for vidrnn extract) reads {videos_root} as one folder per "
            "class with a split of its own, which gives up the official fold (scores not comparable to published ones)")


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
    videos_root: Path, lists: dict[str, list[PurePosixPath]], list_files: dict[str, Path], classes: set[str]
) -> tuple[list[VideoRecord], list[Path]]:
    records: list[VideoRecord] = []
    missing: list[Path] = []
    for split, clips in lists.items():
        list_file = list_files[split]
        for clip in clips:
            label = clip.parts[0]
            if label not in classes:
                continue
            path = videos_root.joinpath(*clip.parts)
            if path.is_file():
                records.append(VideoRecord(path, label, _group(clip, list_file), split))
            else:
                missing.append(path)
    return records, missing


def _unlisted(videos_root: Path, classes: list[str], listed_classes: set[str],
              lists: dict[str, list[PurePosixPath]]) -> list[Path]:
    """What lies under ``videos_root`` that the split lists do not name, sorted: visible folders that are no listed
    class (``listed_classes``; the split lists' own folder is among them) and, in the present ``classes``' folders,
    visible video files no list names (a README or Thumbs.db is no clip, and the folders dataset would not read it
    either). One directory listing per folder, so 13k clips take a moment, not a stat each."""
    named = {clip.as_posix() for clips in lists.values() for clip in clips}
    folders = [entry for entry in os.scandir(videos_root) if entry.is_dir() and not is_hidden(entry.name)]
    unlisted = [Path(entry.path) for entry in folders if entry.name not in listed_classes]
    for label in classes:
        unlisted += [Path(entry.path) for entry in os.scandir(videos_root / label)
                     if not is_hidden(entry.name) and Path(entry.name).suffix.lower() in VIDEO_EXTENSIONS
                     and entry.is_file() and f"{label}/{entry.name}" not in named]
    return sorted(unlisted)


def _warn_unlisted(videos_root: Path, unlisted: list[Path], fold: int) -> None:
    """Say, once, the files and folders :func:`_unlisted` found: how many and the first few of each."""
    folders = [path for path in unlisted if path.parent == videos_root]
    files = [path.relative_to(videos_root).as_posix() for path in unlisted if path.parent != videos_root]
    said = []
    if files:
        said.append(f"{counted(len(files), 'video')} in the class folders that neither trainlist0{fold}.txt nor "
                    f"testlist0{fold}.txt names ({first_few(files, 5)})")
    if folders:
        said.append(f"{counted(len(folders), 'folder')} that {'is' if len(folders) == 1 else 'are'} no class of "
                    f"classInd.txt ({first_few([path.name for path in folders], 5)})")
    if said:
        warn_once(logger, "%s: not read, as the split lists do not name them: %s (a run keeps them in its "
                  "splits.json, unlisted); to read them, use the folders dataset, which gives up the official fold",
                  videos_root, " and ".join(said))


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

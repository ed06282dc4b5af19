"""An index of the user's own videos, sorted into one folder per class.

Layout: ``root/<class>/**/<video>``. The top-level folder is the class; deeper sub-folders are free for the user's
own organisation, and may be symbolic links to folders elsewhere (followed, each folder walked once). A video is
any file whose extension (any case) is in :data:`vidrnn.video.VIDEO_EXTENSIONS`; hidden files and folders (name
starting with ``.``) are ignored, so ``.DS_Store`` or a ``.cache`` folder never becomes data. What else is passed over
and may be video — a file with another extension that is not obviously something else (an image, text, a table,
subtitles, audio), a folder of images only (a clip stored as frames) — is named once per dataset in a warning.

Splitting is where a folder dataset most easily lies. Clips cut from one recording look alike, and a split that puts
some in train and their siblings in test measures how well the model remembers a recording, not how well it
recognises the class. So when the files reveal their recording, the split keeps each recording (*group*) whole:

1. a file name holding UCF101's ``_gGG_`` (:data:`GROUP_PATTERN`) belongs to group ``gGG``;
2. otherwise, a file in a sub-folder of its class folder belongs to that sub-folder (``dog/session3/clip.mp4``);
3. otherwise the clip has no group and is split on its own.

A group id is qualified by its class (``"dog/g03"``, ``"dog/session3"``): groups are chosen per class, so a bare
``g03`` could be test in one class and train in another; qualified ids are unique across the dataset, and any check
on ``record.group`` alone is valid. Test groups are drawn per class with a generator seeded by ``seed`` and the class
name, so adding a class does not reshuffle the others, and the recorded ``split_rule`` reproduces the split.

Videos lying directly in the root, outside any class folder, are not read and are named in a warning (a class's own
folder given as the root by mistake would otherwise make its sub-folders the classes and drop its videos); a root
whose folders hold no video but which holds videos itself is refused as one class's folder.

A root holding ``train/`` and ``test/`` folders (each laid out as above) is taken as an explicit split and used as
given; a ``val/`` folder beside them, laid out alike, is the validation split (records of split ``"val"``, which the
data module then uses instead of carving validation out of ``train/``). Whatever else lies beside them is not read,
and is named in a warning; so are ``train/``, ``val/`` or ``test/`` folders that make no explicit split (``train/``
without ``test/``), which are read as class folders.

Videos nobody has labelled (:func:`unlabeled_index`: every video under a folder) are one class, ``unlabeled``, split
by the same group rules; they serve the temporal-order tasks, whose labels come from the clips themselves.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.distributed import warn_once
from vidrnn.text import counted, first_few
from vidrnn.video import (
    IMAGE_EXTENSIONS, NOT_VIDEO_EXTENSIONS, VIDEO_EXTENSIONS, UnreadableFolders, VideoReadError, is_hidden,
    unfollowable, walk_visible,
)

__all__ = ["GROUP_PATTERN", "UNLABELED", "folder_index", "has_explicit_split", "unlabeled_index"]

#: UCF101-style recording group in a file name: ``v_Walk_g03_c01.avi`` belongs to group ``g03``.
GROUP_PATTERN = re.compile(r"_(g\d+)_")

_EXPLICIT_SPLITS = ("train", "test")

#: The folder an explicit split may give its validation clips in, beside ``train/`` and ``test/``.
_GIVEN_VALIDATION = "val"

#: The one class of :func:`unlabeled_index`.
UNLABELED = "unlabeled"


#: Files (and folders of frames) named as examples in a warning.
_EXAMPLES = 3

logger = logging.getLogger(__name__)


def folder_index(
    root: str | os.PathLike,
    *,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> DatasetIndex:
    """Index ``root/<class>/**/<video>`` and split it into ``"train"`` and ``"test"`` records.

    Classes are the top-level folder names in sorted order. A class folder without videos is skipped with a warning
    rather than failing: stray folders (notes, thumbnails) are common, and the warning names them.

    Per class, test groups are drawn until the test share of the class's clips (not of its groups: a large recording
    counts for its clips) is as close to ``test_fraction`` as whole groups allow; a
    class with at least two groups (or ungrouped clips) always gets a test group and keeps a train group, while a
    class with a single one stays in train with a warning. When ``root`` holds ``train/`` and ``test/`` folders,
    they are the split (with ``val/``, if there is one, the validation split) and ``test_fraction`` and ``seed`` play
    no part.
    """
    root = _checked(root, test_fraction, "<class>/<video>")

    if has_explicit_split(root):
        return _explicit_index(root)

    _warn_split_folders_read_as_classes(root)
    videos, passed_over = _scan_classes(root)
    _warn_passed_over(root, passed_over)
    records: list[VideoRecord] = []
    for label, files in videos.items():
        groups = {file: _group_of(file.relative_to(root)) for file in files}
        records += _split_class(label, groups, root, test_fraction, random.Random(f"{seed}:{label}"))
    rule = _split_rule(records, test_fraction, seed)
    return DatasetIndex(root=root, classes=list(videos), records=records, split_rule=rule)


def has_explicit_split(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds ``train/`` and ``test/`` folders, which :func:`folder_index` takes as the split as given
    (so its ``test_fraction`` and ``seed`` decide nothing there)."""
    root = Path(root).expanduser()
    return all((root / split).is_dir() for split in _EXPLICIT_SPLITS)


def unlabeled_index(
    root: str | os.PathLike,
    *,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> DatasetIndex:
    """Index every video under ``root`` (any depth) as one class, :data:`UNLABELED`, split into train and test.

    Groups come from the file name (:data:`GROUP_PATTERN`) or the first sub-folder under ``root``, and whole groups are
    split as :func:`folder_index` splits a class.
    """
    root = _checked(root, test_fraction, "<video>, at any depth")
    found = _find(root)
    found.refuse_unreadable(root)
    _warn_passed_over(root, found)
    files = found.videos
    if not files:
        raise FileNotFoundError(f"{root}: no video files (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
    # Seen as if under one class folder, the first sub-folder is where a class folder's sub-folder would be.
    groups = {file: _group_of(Path(UNLABELED) / file.relative_to(root)) for file in files}
    records = _split_class(UNLABELED, groups, root, test_fraction, random.Random(f"{seed}:{UNLABELED}"))
    rule = _split_rule(records, test_fraction, seed)
    return DatasetIndex(root=root, classes=[UNLABELED], records=records, split_rule=f"unlabeled videos; {rule}")


def _checked(root: str | os.PathLike, test_fraction: float, layout: str) -> Path:
    """The root as a path, after refusing a missing root or a useless fraction."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: video folder not found; expected {root}/{layout}")
    return root


@dataclass
class _Found:
    """What a search of folders found: the videos the index reads, and what it passed over that may be video too —
    files with an extension it does not read (obvious non-videos aside, :data:`NOT_VIDEO_EXTENSIONS`) and folders holding
    images only (clips stored as frames, which class folders do not take)."""

    videos: list[Path] = field(default_factory=list)
    unlisted: list[Path] = field(default_factory=list)
    frame_folders: list[Path] = field(default_factory=list)
    unreadable: list[VideoReadError] = field(default_factory=list)

    def add(self, other: _Found) -> None:
        """Take in what another search found (what the index passes over is said once for a whole dataset)."""
        self.videos += other.videos
        self.unlisted += other.unlisted
        self.frame_folders += other.frame_folders
        self.unreadable += other.unreadable

    def refuse_unreadable(self, root: Path) -> None:
        """Refuse (:class:`~vidrnn.video.UnreadableFolders`) a search that met folders it could not list or links it
        could not follow: the dataset would silently lack their videos."""
        if self.unreadable:
            raise UnreadableFolders(root, self.unreadable)


def _scan_classes(base: Path) -> tuple[dict[str, list[Path]], _Found]:
    """Class name → its video files (sorted), in class-name order, and what the search passed over (for
    :func:`_warn_passed_over`); classes without videos are left out. Refused when a class or session folder cannot
    be read (:meth:`_Found.refuse_unreadable`), a link to one that leads nowhere included: such a class would
    vanish, or lose clips, without a word."""
    visible = sorted((path for path in base.iterdir() if not is_hidden(path.name)), key=lambda path: path.name)
    class_dirs = [path for path in visible if path.is_dir()]
    loose = [path for path in visible if path.suffix.lower() in VIDEO_EXTENSIONS and not path.is_dir()]
    videos: dict[str, list[Path]] = {}
    passed_over = _Found(unreadable=[problem for path in visible if path.suffix.lower() not in VIDEO_EXTENSIONS
                                     and (problem := unfollowable(path)) is not None])
    found_in = {class_dir: _find(class_dir) for class_dir in class_dirs}
    for found in found_in.values():
        passed_over.add(found)
    passed_over.refuse_unreadable(base)
    for class_dir, found in found_in.items():
        if found.videos:
            videos[class_dir.name] = found.videos
        else:
            warn_once(logger, "%s holds no video files; class %r is skipped", class_dir, class_dir.name)
    if not videos:
        raise FileNotFoundError(_no_class_videos(base, bool(class_dirs), loose))
    if loose:
        warn_once(logger, "%s: %s directly in it, outside any class folder, not read (such as %s): class folders are "
              "%s/<class>/<video>, one folder per class. If it is one class's folder, give its parent as the "
              "root", base, counted(len(loose), "video"), _relative(loose, base), base)
    return videos, passed_over


def _no_class_videos(base: Path, has_folders: bool, loose: list[Path]) -> str:
    """Why ``base`` gives no class: no folders, or none holding a video — and when videos lie in ``base`` itself, that
    it looks like one class's folder given as the root by mistake."""
    what = "no class folder holds a video" if has_folders else "no class folders"
    if loose:
        return (f"{base}: {what}, but {counted(len(loose), 'video')} directly in it (such as "
                f"{_relative(loose, base)}): it looks like one class's folder. Class folders are {base}/<class>/<video>, one folder per class: give "
                "the folder that holds them as the root")
    if has_folders:
        return f"{base}: {what} file (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})"
    return f"{base}: {what}; expected {base}/<class>/<video>, one folder per class"


def _find(folder: Path) -> _Found:
    """The video files under ``folder``, at any depth, sorted — hidden names skipped, links to folders followed, each
    folder once (:func:`~vidrnn.video.walk_visible`) — and what the search passed over that may be video."""
    found = _Found()
    for directory, names in walk_visible(folder, unreadable=found.unreadable.append):
        files = [directory / name for name in names]
        found.videos += [file for file in files if file.suffix.lower() in VIDEO_EXTENSIONS]
        found.unlisted += [file for file in files
                           if _may_be_video(file) and file.suffix.lower() not in VIDEO_EXTENSIONS]
        if len(files) > 1 and all(file.suffix.lower() in IMAGE_EXTENSIONS for file in files):
            found.frame_folders.append(directory)
    found.videos.sort()
    return found


def _may_be_video(file: Path) -> bool:
    """Whether a file's extension leaves it possibly a video (any extension but an obvious non-video's)."""
    return bool(file.suffix) and file.suffix.lower() not in NOT_VIDEO_EXTENSIONS


def _warn_passed_over(root: Path, found: _Found) -> None:
    """Name, once for the dataset under ``root``, the files and folders its index passed over that may be videos: a
    camera's or encoder's extension the index does not know would otherwise drop clips from a class without a word."""
    said = []
    if found.unlisted:
        by_extension = Counter(file.suffix.lower() for file in found.unlisted)
        said.append(
            f"{counted(len(found.unlisted), 'file')} with an extension it does not read (by extension: "
            f"{', '.join(f'{extension} {count}' for extension, count in by_extension.most_common())}; such as "
            f"{_relative(found.unlisted, root)}): rename those that are videos to an extension it reads "
            f"({', '.join(sorted(VIDEO_EXTENSIONS))}) or convert them")
    if found.frame_folders:
        said.append(f"{counted(len(found.frame_folders), 'folder')} of images only (such as "
                    f"{_relative(found.frame_folders, root)}), which may be clips stored as frames: the index reads "
                    "video files only; make each such clip a video file")
    if said:
        warn_once(logger, "%s: the index passed over %s", root, "; and ".join(said))


def _relative(paths: list[Path], root: Path) -> str:
    """The first few of ``paths``, relative to ``root``, for a message."""
    return first_few([path.relative_to(root).as_posix() for path in paths], _EXAMPLES)


def _group_of(relative: Path) -> str | None:
    """The group of a clip from its path relative to the split root (``<class>/.../<file>``), class-qualified."""
    label = relative.parts[0]
    if match := GROUP_PATTERN.search(relative.name):
        return f"{label}/{match.group(1)}"
    if len(relative.parts) > 2:
        return f"{label}/{relative.parts[1]}"
    return None


def _split_class(
    label: str, groups: dict[Path, str | None], root: Path, test_fraction: float, rng: random.Random
) -> list[VideoRecord]:
    """Assign one class's clips (file under ``root`` → group) to train or test by whole groups, keeping file order."""
    units = {file: _unit(file.relative_to(root), group) for file, group in groups.items()}
    sizes: Counter[str] = Counter(units.values())
    order = sorted(sizes)
    rng.shuffle(order)
    test_units = _choose_test_units(order, sizes, test_fraction * len(groups))
    if not test_units:
        warn_once(logger, "class %r has a single group or clip, so all its clips go to train", label)
    return [
        VideoRecord(file, label, group, "test" if units[file] in test_units else "train")
        for file, group in groups.items()
    ]


def _unit(relative: Path, group: str | None) -> str:
    """What the split moves as a whole: the clip's group, or the clip alone when it has none.

    A clip alone is named by its path relative to the root, never by the root's spelling: the order of the units,
    and so the seeded split, must be the same for ``ds`` and ``/abs/ds``, or a fit and a test that spell the root
    differently would hold out different clips.
    """
    return group if group is not None else relative.as_posix()


def _choose_test_units(units: list[str], sizes: Counter[str], target: float) -> set[str]:
    """Greedily take units (in the given, shuffled order) that bring the test size closer to ``target``.

    One unit always stays in train; when every unit alone overshoots, the smallest is taken anyway so that a class
    with several groups is still tested.
    """
    if len(units) < 2:
        return set()
    chosen: set[str] = set()
    taken = 0
    for unit in units:
        if len(chosen) == len(units) - 1:
            break
        if abs(taken + sizes[unit] - target) < abs(taken - target):
            chosen.add(unit)
            taken += sizes[unit]
    return chosen or {min(units, key=sizes.__getitem__)}


def _split_rule(records: list[VideoRecord], test_fraction: float, seed: int) -> str:
    if any(record.group for record in records):
        how = (f"whole groups per class (groups from file-name pattern {GROUP_PATTERN.pattern!r}, then sub-folders; "
               "an ungrouped clip is its own group)")
    else:
        how = "clips per class at random (no groups found)"
    return f"folder split: {how}, test_fraction={test_fraction}, seed={seed}"


def _explicit_index(root: Path) -> DatasetIndex:
    splits = ("train", _GIVEN_VALIDATION, "test") if (root / _GIVEN_VALIDATION).is_dir() else _EXPLICIT_SPLITS
    records: list[VideoRecord] = []
    passed_over = _Found()
    for split in splits:
        base = root / split
        videos, found = _scan_classes(base)
        passed_over.add(found)
        for label, files in videos.items():
            records += [
                VideoRecord(file, label, _group_of(file.relative_to(base)), split)
                for file in files
            ]
    _warn_passed_over(root, passed_over)
    _warn_unread_beside(root, splits)
    for other in splits[1:]:
        _warn_shared_groups(records, root, other)
    return DatasetIndex(
        root=root,
        classes=sorted({record.label for record in records}),
        records=records,
        split_rule=f"explicit split: the {_folders(splits)} folders as given",
    )


def _folders(names: tuple[str, ...]) -> str:
    """``train/, val/ and test/``."""
    return ", ".join(f"{name}/" for name in names[:-1]) + f" and {names[-1]}/"


def _warn_unread_beside(root: Path, splits: tuple[str, ...]) -> None:
    """Name what lies beside the split's folders that may be data — folders (another class, a ``validation/``) and
    files that may be videos — since an explicit split reads its split folders alone."""
    unread = [f"{path.name}/" if path.is_dir() else path.name for path in sorted(root.iterdir())
              if not is_hidden(path.name) and path.name not in splits and (path.is_dir() or _may_be_video(path))]
    if unread:
        warn_once(logger, "%s holds the split as given (%s); not read beside them: %s (an explicit split reads %s, each "
              "holding class folders, and nothing else)", root, ", ".join(f"{name}/" for name in splits),
              ", ".join(unread), _folders(splits))


def _warn_split_folders_read_as_classes(root: Path) -> None:
    """A root with ``train/`` (or ``test/``) but not both makes no explicit split: its split folders become classes
    (a classifier of "train" against "val"), which deserves a word."""
    present = [name for name in ("train", _GIVEN_VALIDATION, "test") if (root / name).is_dir()]
    if present:
        absent = " or ".join(f"{name}/" for name in _EXPLICIT_SPLITS if name not in present)
        warn_once(logger, "%s holds %s but no %s: they are read as class folders; a split as given needs train/ and test/ "
              "(%s/ optional)", root, ", ".join(f"{name}/" for name in present), absent, _GIVEN_VALIDATION)


def _warn_shared_groups(records: list[VideoRecord], root: Path, other: str) -> None:
    """A given split is the user's call, but one that leaks a recording from train into test or validation deserves a
    warning."""
    train, held_out = ({record.group for record in records if record.split == split} for split in ("train", other))
    shared = sorted(group for group in train & held_out if group is not None)
    if shared:
        warn_once(logger, "%s: groups %s have clips in both train/ and %s/; %s results will be optimistic", root, shared,
              other, "validation" if other == _GIVEN_VALIDATION else "test")

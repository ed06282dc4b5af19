"""``vidrnn classify``: label video files with a trained checkpoint, one output row per video.

Built for long unattended runs over many files: rows are written and flushed as videos finish (classified a few at a
time, within about a second), so an interrupted run keeps its work and ``--resume`` carries on where it stopped,
trying error rows' videos again; a video that cannot be read gets an error row with the reason and the rest goes on.
Usage errors (a missing checkpoint, an unknown output format, an output already there without ``--resume`` or
``--overwrite``) stop the command before any video is decoded.

Beside the output, ``OUTPUT.meta.json`` (:func:`record_path`) records which checkpoint made its rows and the settings that decide their
content (:func:`run_record`), and the directory the rows' relative paths start from, so a resume from anywhere
knows them. ``--resume`` appends only to rows made the same way: a results file never mixes two
models' rows.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from vidrnn.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from vidrnn.files import atomic_write, atomic_write_bytes, file_sha256, fitted_name, name_max, unwritable
from vidrnn.objectives import LABEL_SEPARATOR, ORDER_CLASSES
from vidrnn.text import counted
from vidrnn.video import (
    ASSUMED_FPS, MAX_PLAUSIBLE_FPS, VIDEO_EXTENSIONS, VideoReadError, is_hidden, listing_error, walk_visible,
)

if TYPE_CHECKING:
    from vidrnn.inference import Prediction, PredictionFailure, Predictor

__all__ = ["add_classify_parser", "record_path", "run_classify", "run_record"]

#: Exit status for a usage error, as argparse itself uses.

FIELDS = ("path", "status", "top1_label", "top1_probability", "topk_labels", "topk_probabilities", "frames_used",
          "duration_s", "error")
FORMATS = (".csv", ".jsonl")

#: ``vidrnn classify --help``'s account of a row (the columns of :data:`FIELDS`).
OUTPUT_COLUMNS = (
    "Output columns, one row per video: path (the video as given, or as found in a given folder; given relative to "
    "another directory than the output's first run, as from that one); status (ok or "
    "error); top1_label and top1_probability (the most likely class); topk_labels and topk_probabilities (the --top-k "
    "most likely classes and their probabilities, best first, joined with ';' in CSV, lists in JSON Lines: no class "
    "name holds ';', as class folders are refused that do, and a checkpoint whose classes do writes JSON Lines only); "
    "frames_used (the frames the model read, after the checkpoint's sampling and steps); duration_s (the video's "
    "length in seconds: its frames counted as decoded over its frame rate; a folder of images, and a file stating no "
    f"plausible rate (0, or above {MAX_PLAUSIBLE_FPS:g}: said in a warning), count {ASSUMED_FPS:g} frames a second); "
    "error (why an error row's video could not be classified; on an ok row, empty but for a video that held far "
    "fewer frames than its container states, a truncated or damaged file classified from the frames it holds: how "
    "many of how many). An error row leaves the others empty."
)


def add_classify_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``vidrnn classify`` with the ``vidrnn`` command's sub-parsers."""
    parser = commands.add_parser(
        "classify",
        help="classify video files with a trained checkpoint",
        description="Classify videos with a VideoClassifier checkpoint, sampling and decoding frames exactly as its "
        "training data was. Folders contribute their files with a video extension, except hidden ones (a name "
        "starting with '.', or under such a folder, as macOS's ._clip.mp4); files named explicitly are always tried. "
        "A video named twice (another spelling of its path, a symbolic link to it; a hard link is another file) is "
        "classified once, under its path without symbolic links where it has one, else as first named; the run "
        "says how many paths it merged so. "
        "One row per video is written (and flushed) as it finishes (a few at a time, within about a second); "
        "unreadable videos, and folders that cannot be listed or followed (a link to an unmounted disk), get an "
        "error row with the reason, and the command ends with exit status 3 while the "
        "output holds an error row (with --resume, also one an earlier run wrote). "
        "Decoding processes that cannot start at all (an environment problem, not a video's) stop the run with exit "
        "status 1.",
        epilog=OUTPUT_COLUMNS,
    )
    parser.add_argument("paths", nargs="+", type=Path,
                        help="video files and folders of videos, anywhere among the options")
    parser.add_argument("--ckpt", type=Path, required=True, help="VideoClassifier checkpoint (.ckpt)")
    parser.add_argument("--output", type=Path, default=Path("predictions.csv"),
                        help="results file; .csv or .jsonl (JSON Lines) by extension (default: predictions.csv); "
                        "an existing one is refused unless --resume or --overwrite")
    parser.add_argument("--top-k", type=int, default=5, help="classes listed per video (default: 5, at most all)")
    parser.add_argument("--recursive", action="store_true",
                        help="also take videos from sub-folders of given folders (links to folders followed, each "
                        "folder once)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="frames per CNN batch (default: the checkpoint's, the batch its training features were "
                        "extracted in, data.extract_batch_size; for an older checkpoint the data setting saved beside "
                        "it, else 32): another size rounds the features differently, and the results differ slightly "
                        "from vidrnn test's")
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding processes (default: one per available CPU core); a decoder that crashes one costs that video an error "
                        "row. 0 decodes in this process, where such a crash ends the run")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available (default)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true",
                          help="skip videos the output file already holds a result for and append; a video with an "
                          "error row there is tried again (its file may have been fixed), and its new row replaces "
                          "the error row when the run ends. Refused when the rows there were made otherwise (another "
                          "checkpoint, --top-k, --batch-size, device precision or backbone weights, as "
                          "OUTPUT.meta.json records them) or when nothing records how (an output of an older vidrnn)")
    existing.add_argument("--overwrite", action="store_true",
                          help="replace an existing output and its OUTPUT.meta.json: an earlier run's rows are lost. "
                          "Without it or --resume, an output already there is refused")
    parser.set_defaults(run=run_classify, interrupted=_how_to_go_on)


def _how_to_go_on(args: argparse.Namespace) -> str:
    """What an interrupted run says: where its rows are, and the command that goes on from them — an overwriting
    run's own command would replace them, and --resume is not taken beside --overwrite."""
    instead = " in place of --overwrite" if args.overwrite else ""
    return f"the rows finished so far are in {args.output}: the same command with --resume{instead} goes on from there"


# -- which files ---------------------------------------------------------------------------------------------------


def discover(paths: Iterable[Path], recursive: bool,
             merged: list[tuple[Path, Path]] | None = None) -> list[Path]:
    """The videos to classify, in a stable order, each once.

    A folder contributes its files with a video extension (any case), sorted; sub-folders only when ``recursive``.
    Hidden names below it are skipped, files and folders alike, as a folder dataset skips them: macOS's
    ``._clip.mp4`` beside each clip would otherwise be an error row, and a failed run, for every video.
    Symbolic links count as files even when they lead nowhere (or in a loop): like a broken file, a broken link
    gets an error row rather than silently vanishing. A path that is not a folder is taken as given, whatever its
    extension or existence, so a mistyped file the user named gets an error row too.

    A video is its resolved path (:func:`_resolved`), the identity ``--resume`` knows rows by: one named twice — as a
    relative and an absolute path, through ``..``, or by a symbolic link to a file (as a recursive search enters a
    folder reached by two links once) — is classified once, at the place it was first found, under its spelling
    without symbolic links where it has one (:func:`_link_free`: the file itself, not whichever link sorts first),
    else the first given; each path left out is added to ``merged`` with the one kept, for the run to say. A hard
    link is another file: its resolved path is its own, and a row's video may no longer exist to be told by inode.
    """
    found: dict[str, Path] = {}
    for path in paths:
        for video in _folder_videos(path, recursive) if path.is_dir() else [path]:
            kept = found.setdefault(_resolved(video), video)
            if kept is video:
                continue
            if _link_free(video) and not _link_free(kept):
                found[_resolved(video)], kept, video = video, video, kept
            if merged is not None and video != kept:  # one spelling named twice is no pair to tell of
                merged.append((video, kept))
    return list(found.values())


def _link_free(path: Path) -> bool:
    """Whether ``path`` reaches its file through no symbolic link: the spelling of a video a row keeps, if it has
    one, as the file's own place outlives the links to it."""
    return os.path.realpath(path) == os.path.abspath(path)


def _resolved(path: str | Path) -> str:
    """The path with links followed as far as they lead: ``os.path.realpath``, which, unlike ``Path.resolve``, does
    not raise on a symbolic-link loop (a loop is a bad input to report in its row, not a reason to stop)."""
    return os.path.realpath(path)


def _folder_videos(folder: Path, recursive: bool) -> list[Path]:
    """The videos found in ``folder``, sorted: with ``recursive``, in its sub-folders too, walked as a folder dataset
    walks its root (:func:`~vidrnn.video.walk_visible`: links to folders followed, each folder once, so a linked
    session folder is not silently left out and a link cycle ends). ``folder`` itself, hidden or not, the user
    named. A sub-folder the walk cannot list or follow (a link to an unmounted disk) is among them, as a broken link
    to a video is: reading it fails, and its error row says why, where passing it over would lose its videos unsaid."""
    unreadable: list[VideoReadError] = []
    if recursive:
        candidates = [Path(directory, name)
                      for directory, names in walk_visible(folder, unreadable=unreadable.append) for name in names]
    else:
        candidates = _listed(folder, unreadable)
    videos = [path for path in candidates if path.suffix.lower() in VIDEO_EXTENSIONS and _file_or_link(path)]
    return sorted(videos + [Path(problem.path) for problem in unreadable])


def _listed(folder: Path, unreadable: list[VideoReadError]) -> list[Path]:
    """The visible entries of ``folder``; none where it cannot be listed (this user may not read it), which is added
    to ``unreadable`` instead, to get its error row."""
    try:
        return [path for path in folder.iterdir() if not is_hidden(path.name)]
    except OSError as error:
        unreadable.append(listing_error(error))
        return []


def _unusable(path: Path) -> str | None:
    """Why a named path gives nothing to classify — it does not exist, or it is a folder this user cannot list —
    else ``None``."""
    if not (path.exists() or path.is_symlink()):
        return f"no such file or folder: {path}"
    if path.is_dir():
        try:
            os.scandir(path).close()
        except OSError as error:
            return str(listing_error(error))
    return None


def _file_or_link(path: Path) -> bool:
    """A regular file, or a symbolic link whatever it points to (``is_file`` is false for a link that is broken)."""
    return path.is_symlink() or path.is_file()


# -- the output file -----------------------------------------------------------------------------------------------


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The complete rows of an earlier run's output, in file order; a row cut short by a crash is dropped (and redone):
    in CSV, one that lacks a field (a row cut after its status column would otherwise pass for a result)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix == ".csv":
            return [row for row in csv.DictReader(handle)
                    if row.get("status") in ("ok", "error") and None not in row.values()]
        rows = []
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and row.get("status") in ("ok", "error") and "path" in row:
                rows.append(row)
        return rows


def _video_of(row: dict[str, Any], directory: str) -> str:
    """Which video a row is about: its path, relative ones from ``directory`` (where the output's first run started,
    :func:`_rows_directory`), with links followed, so that ``./a.avi`` and ``a.avi`` are one video."""
    return _resolved(os.path.join(directory, row["path"]))


def _settled(rows: list[dict[str, Any]], directory: str) -> list[dict[str, Any]]:
    """The rows that stand, in file order, one per video (:func:`_video_of`, the identity :func:`discover` knows
    videos by): its first ``ok`` row, else its last error row (a retry's).

    A resume tries error rows' videos again and appends their new rows, leaving the error rows where they are until
    the run ends and settles the file (:func:`_settle`): a run killed meanwhile loses nothing, and whatever it left
    both of is settled by the next resume's reading. An output written before a video named twice was classified
    once may hold its ``ok`` rows under several names (relative, absolute, a link): the first stands."""
    videos = [_video_of(row, directory) for row in rows]
    first_ok: dict[str, int] = {}
    for position, (video, row) in enumerate(zip(videos, rows)):
        if row["status"] == "ok":
            first_ok.setdefault(video, position)
    latest = {video: position for position, video in enumerate(videos)}
    return [row for position, (video, row) in enumerate(zip(videos, rows))
            if first_ok.get(video, latest[video]) == position]


def _settle(output: Path, directory: str) -> list[dict[str, Any]]:
    """The output's rows once settled (:func:`_settled`), written back where a retry replaced any — atomically, so a
    kill meanwhile leaves the file as it was, each video's newer row in it."""
    rows = _read_rows(output)
    settled = _settled(rows, directory)
    if len(settled) < len(rows):
        _rewrite(output, settled)
    return settled


def _rewrite(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the file with ``rows`` (and the CSV header), into a temporary file renamed over the old one, so a kill
    meanwhile leaves the earlier rows whole."""
    buffer = io.StringIO(newline="")
    if path.suffix == ".csv":
        writer = csv.DictWriter(buffer, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    else:
        buffer.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue().encode("utf-8")))


class RowWriter:
    """Writes result rows to CSV or JSON Lines, flushing each row so an interrupted run keeps every finished video."""

    def __init__(self, path: Path, kept_rows: list[dict[str, Any]]) -> None:
        self.path = path
        self.csv = path.suffix == ".csv"
        # Rewritten with the kept rows, so a line a crash cut short cannot glue itself to the first new row.
        _rewrite(path, kept_rows)
        self._handle: TextIO = path.open("a", newline="", encoding="utf-8")
        self._csv_writer = csv.DictWriter(self._handle, fieldnames=FIELDS) if self.csv else None

    def _emit(self, row: dict[str, Any]) -> None:
        if self._csv_writer is not None:
            self._csv_writer.writerow(row)
        else:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and push it to the operating system."""
        self._emit(self._for_csv(row) if self.csv else row)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    @staticmethod
    def _for_csv(row: dict[str, Any]) -> dict[str, Any]:
        """Lists become ``;``-joined strings and floats get six decimals: one flat, readable cell each."""
        flat = dict(row)
        flat["topk_labels"] = LABEL_SEPARATOR.join(row["topk_labels"])
        flat["topk_probabilities"] = LABEL_SEPARATOR.join(f"{p:.6f}" for p in row["topk_probabilities"])
        for name in ("top1_probability", "duration_s"):
            if flat[name] is not None:
                flat[name] = f"{flat[name]:.6f}"
        return {name: "" if value is None else value for name, value in flat.items()}

    def close(self) -> None:
        self._handle.close()


# -- what made the rows --------------------------------------------------------------------------------------------


def record_path(output: Path) -> Path:
    """Where the record of what made ``output``'s rows lies: beside it, ``OUTPUT.meta.json``, shortened
    (:func:`fitted_name`) where that name is longer than the file system takes — an output's name that fits may not
    leave room for the 10 bytes added — the same on every run, so a resume finds it."""
    return output.with_name(fitted_name(output.name, ".meta.json", name_max(output.parent)))


def run_record(checkpoint: Path, predictor: Predictor, top_k: int, batch_size: int, directory: str) -> dict[str, Any]:
    """What made a run's rows: the checkpoint's path, for whoever reads the record; the ``directory`` the rows'
    relative paths start from (:func:`_rows_directory`); and under ``made_with`` all that decides a row's content
    besides its video, which ``--resume`` compares.

    The checkpoint's bytes hold its weights, classes, sampling and steps; the backbone's identity now says which
    weights ``DEFAULT`` or a weights file stand for where this run computes (an updated wheel changes every
    feature); the CNN's precision on this device and its batch size decide the features' rounding (the feature
    cache keys on the former for that reason); ``top_k`` how many classes a row lists (at most all).
    """
    from vidrnn.backbones import feature_precision

    return {"checkpoint": os.path.abspath(checkpoint),
            "directory": directory,
            "made_with": {"checkpoint_sha256": file_sha256(checkpoint),
                          "backbone": predictor.backbone.spec.identity(),
                          "precision": feature_precision(predictor.device),
                          "batch_size": batch_size,
                          "top_k": min(top_k, len(predictor.class_names))}}


def _resume_problem(output: Path, kept: list[dict[str, Any]], record: dict[str, Any]) -> str | None:
    """Why ``--resume`` must not append this run's rows (made as ``record`` says) to the ``kept`` rows of
    ``output``; ``None`` when it may: there are none, or they were made the same way.

    An output without a record (written by a vidrnn before records, or the record removed) is refused too: nothing
    says its rows came from this checkpoint, and the record this run writes would claim they did.
    """
    if not kept:
        return None
    path = record_path(output)
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        made_with = dict(earlier["made_with"])
    except FileNotFoundError:
        return f"nothing records which checkpoint made the rows in {output} (no {path.name}: written by an older vidrnn)"
    except (ValueError, KeyError, TypeError):
        return f"{path} does not say which checkpoint made the rows in {output}"
    now = record["made_with"]
    differing = [name for name in now if made_with.get(name) != now[name]]
    if not differing:
        return None
    shown = [f"checkpoint {earlier.get('checkpoint')} there, {record['checkpoint']} now, with other contents"
             if name == "checkpoint_sha256" else f"{name}: {made_with.get(name)} there, {now[name]} now"
             for name in differing]
    return f"the rows in {output} were made otherwise ({'; '.join(shown)}): this run's would be mixed in"


def result_row(result: Prediction | PredictionFailure, path: str) -> dict[str, Any]:
    """One output row per video (``path``: as the rows hold it, :func:`_as_recorded`), whether it was classified or
    not, so every input is accounted for."""
    if not result.ok:
        return {"path": path, "status": "error", "top1_label": None, "top1_probability": None,
                "topk_labels": [], "topk_probabilities": [], "frames_used": None, "duration_s": None,
                "error": result.reason}
    return {
        "path": path,
        "status": "ok",
        "top1_label": result.top_labels[0],
        "top1_probability": float(result.top_probabilities[0]),
        "topk_labels": list(result.top_labels),
        "topk_probabilities": [float(p) for p in result.top_probabilities],
        "frames_used": result.frames_used,
        "duration_s": float(result.duration),
        "error": None if result.cut_short is None else str(result.cut_short),
    }


# -- the command ---------------------------------------------------------------------------------------------------


def _shown_path(path: str | Path) -> str:
    """The path as text that can be written anywhere: a name in another encoding than UTF-8 (an old Windows zip's
    ``café.avi`` in Latin-1) keeps its undecodable bytes as backslash escapes, where writing the name would fail."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What makes the request unrunnable, checked before the (slow) model load, any decoding and the output file
    (also an output this user cannot write: it was found only once the model was loaded, in a traceback).

    Named paths that do not exist, or folders this user cannot list, are error rows of a batch that goes on — unless
    every one is such a path: then the request is a typo (``thre`` for ``three``) or a folder to make readable first,
    and running it would replace the previous output with error rows alone."""
    unusable = [_unusable(path) for path in args.paths]
    if all(unusable):
        return "; ".join(reason for reason in unusable if reason)
    if not args.ckpt.is_file():
        return f"checkpoint not found: {args.ckpt}"
    if args.output.suffix not in FORMATS:
        return f"--output must end in .csv or .jsonl, got {args.output}"
    too_long = _name_too_long(args.output)
    if too_long is not None:
        return f"--output {args.output}: {too_long}; choose a shorter name"
    reason = f"{args.output} is a folder" if args.output.is_dir() else unwritable(args.output.parent)
    if reason is not None:
        return f"--output {args.output}: {reason}; choose an output file this user can write"
    existing = None if args.resume or args.overwrite else _existing_output(args.output)
    if existing is not None:
        what = f"--output {args.output}" + ("" if existing == args.output else f": its record {existing}")
        return (f"{what} already exists: give --resume to add to its rows, --overwrite to replace them, or "
                "another --output")
    batch_size_given = args.batch_size is not None  # else the checkpoint's
    if args.top_k < 1 or (batch_size_given and args.batch_size < 1) or (args.workers is not None and args.workers < 0):
        return "--top-k and --batch-size must be at least 1, --workers at least 0"
    from vidrnn.devices import resolve_device

    try:
        resolve_device(args.device)
    except ValueError as error:
        return f"--device: {error}"
    return None


def _existing_output(output: Path) -> Path | None:
    """The output, or its record (:func:`record_path`), where an earlier run left either: a run that is not told to
    resume or overwrite must not replace its rows — by default predictions.csv, wherever the command runs."""
    return next((path for path in (output, record_path(output)) if path.exists()), None)


def _name_too_long(path: Path) -> str | None:
    """Why the file system holding ``path`` would not take its name (longer than its ``NAME_MAX``), else ``None``:
    asked before any work, as the rows' first write (after the model was loaded) failed on it in a traceback."""
    size, limit = len(os.fsencode(path.name)), name_max(path.parent)
    return f"its name is {size} bytes long, over the {limit} this file system takes" if size > limit else None


def _rows_directory(output: Path, resume: bool) -> str:
    """Where the relative paths of the output's rows start: the working directory of the run that began the output,
    as its record says (:func:`run_record`), so that a resume from anywhere knows them; this run's own directory for
    a new output, and for a record that does not say (an older vidrnn's)."""
    if not resume:
        return os.getcwd()
    try:
        record = json.loads(record_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    directory = record.get("directory") if isinstance(record, dict) else None
    return directory if isinstance(directory, str) else os.getcwd()


def _as_recorded(path: Path, directory: str) -> str:
    """A video's path as a row holds it: as given, or, given relative to another directory than the rows' (a resume
    from elsewhere), relative to theirs."""
    if path.is_absolute() or os.getcwd() == directory:
        return _shown_path(path)
    return _shown_path(os.path.relpath(os.path.abspath(path), directory))


def _plan(videos: list[Path], output: Path, resume: bool,
          directory: str) -> tuple[list[dict[str, Any]], list[Path], int]:
    """Where a run starts: the output's rows it keeps (none unless ``resume``; else settled, :func:`_settled`), the
    videos still to classify — all but those with an ``ok`` row: an error row's video is tried again, as its file may
    have been fixed (a copy that had not finished) — and how many of those are such retries."""
    kept = _settled(_read_rows(output), directory) if resume else []
    classified = {_video_of(row, directory) for row in kept if row["status"] == "ok"}
    failed = {_video_of(row, directory) for row in kept if row["status"] == "error"}
    todo = [video for video in videos if _shown_path(_resolved(video)) not in classified]
    return kept, todo, sum(_shown_path(_resolved(video)) in failed for video in todo)


def _merged_note(merged: list[tuple[Path, Path]]) -> str:
    """What the run says of paths that named a video found under another (:func:`discover`): how many, and the first
    pair, so that a summary counting fewer rows than paths found is not read as videos lost."""
    left_out, kept = merged[0]
    return (f"vidrnn classify: {counted(len(merged), 'path')} named a video found under another path too, each "
            f"classified once (such as {_shown_path(left_out)}, the same video as {_shown_path(kept)}): a row keeps "
            "the path without symbolic links where there is one, else the first given")


def _summary(tried: int, failed: int, skipped: int, retried: int, errors: int, output: Path) -> str:
    """The run's closing line: what it did, and how many error rows its output holds where earlier runs left some."""
    retries = f" ({retried} tried again after an error row)" if retried else ""
    earlier = f" ({errors} error rows in all, earlier runs' included)" if errors > failed else ""
    return f"{tried - failed} classified, {failed} failed, {skipped} already done{retries}: {output}{earlier}"


def _csv_problem(output: Path, class_names: Sequence[str]) -> str | None:
    """Why a CSV output could not hold this checkpoint's labels: a class name holding the separator its cells join
    labels with (a model trained before folder datasets refused such names). ``None`` when it can."""
    joined = [name for name in class_names if LABEL_SEPARATOR in name]
    if output.suffix != ".csv" or not joined:
        return None
    return (f"the checkpoint's class {joined[0]!r} holds {LABEL_SEPARATOR!r}, which joins the labels of a CSV row "
            f"(topk_labels): write JSON Lines instead (--output {output.with_suffix('.jsonl')}), whose rows keep "
            "them as lists")


def _say_order_task(class_names: Sequence[str]) -> None:
    """Say what the labels mean when the checkpoint was trained on a temporal-order task: its rows answer whether each
    video plays forwards (or in order), not what it shows — a checkpoint of ``configs/order_ucf101_cpu.yaml`` is
    easily taken for a classifier."""
    for objective, names in ORDER_CLASSES.items():
        if sorted(class_names) == sorted(names):
            print(f"vidrnn classify: this checkpoint was trained on the {objective.replace('_', ' ')} task: its labels "
                  f"({' / '.join(names)}) say how each video's frames are ordered, not what it shows",
                  file=sys.stderr)


def run_classify(args: argparse.Namespace) -> int:
    """Classify every video the arguments name; 0 when every row of the output is a result, 3 while any is an error
    (with --resume, also one from an earlier run), 2 on usage errors, 1 when the decoding processes cannot start (the
    rows written until then are kept, for --resume)."""
    from tqdm.auto import tqdm

    from vidrnn.distributed import say_once, several_processes
    from vidrnn.inference import Predictor
    from vidrnn.workers import WorkerStartError

    refusal = several_processes("classify", "it would classify every video in each and write the same output from "
                                "all of them")
    if refusal is not None:
        say_once(f"vidrnn classify: error: {refusal}; --workers sets how many processes decode the videos")
        return EXIT_USAGE
    problem = _usage_problem(args)
    if problem is not None:
        print(f"vidrnn classify: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    merged: list[tuple[Path, Path]] = []
    videos = discover(args.paths, args.recursive, merged)
    if merged:
        print(_merged_note(merged), file=sys.stderr)
    if not videos:
        folders = ", ".join(str(path) for path in args.paths)
        hint = "" if args.recursive else " (add --recursive to search sub-folders)"
        print(f"vidrnn classify: error: no video files in {folders}{hint}", file=sys.stderr)
        return EXIT_USAGE
    directory = _rows_directory(args.output, args.resume)
    kept, todo, retried = _plan(videos, args.output, args.resume, directory)
    try:
        predictor = Predictor.from_checkpoint(args.ckpt, device=args.device)
    except ValueError as error:
        print(f"vidrnn classify: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    problem = _csv_problem(args.output, predictor.class_names)
    if problem is not None:
        print(f"vidrnn classify: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    _say_order_task(predictor.class_names)
    batch_size = predictor.batch_size if args.batch_size is None else args.batch_size
    record = run_record(args.ckpt, predictor, args.top_k, batch_size, directory)
    problem = _resume_problem(args.output, kept, record) if args.resume else None
    if problem is not None:
        print(f"vidrnn classify: error: --resume: {problem}; choose another --output, or give --overwrite instead of "
              "--resume to replace it", file=sys.stderr)
        return EXIT_USAGE
    # The output first, then its record: a kill between them leaves rows the old record describes (the kept ones of
    # a resume, which match it) or none, never rows a record claims for another checkpoint.
    writer = RowWriter(args.output, kept)
    atomic_write_bytes(record_path(args.output), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    failed = 0
    bar = tqdm(total=len(todo), unit="video", desc="classify", disable=not todo)
    try:
        results = predictor.predict(todo, batch_size=batch_size, num_workers=args.workers, top_k=args.top_k)
        for result in results:
            writer.write(result_row(result, _as_recorded(Path(result.path), directory)))
            failed += not result.ok
            bar.update(1)
            bar.set_postfix(failed=failed, refresh=False)
    except WorkerStartError as error:
        print(f"vidrnn classify: error: {error} (--workers 0 decodes in this process)", file=sys.stderr)
        return EXIT_FAILED
    finally:
        bar.close()
        writer.close()
    errors = sum(row["status"] == "error" for row in _settle(args.output, directory))
    print(_summary(len(todo), failed, len(videos) - len(todo), retried, errors, args.output))
    return EXIT_SOME_FAILED if errors else EXIT_OK

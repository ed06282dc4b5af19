"""The feature cache: run the frozen CNN over every video once, store the result, reuse it for every epoch.

Layout of one cache (a directory under the cache root, named by a hash of backbone, sampling, videos root,
precision and CNN batch size)::

    spec.json                      backbone, sampling, videos root, precision, batch size: what these features are
    features/<Class>/<video>.npy   float16 [T,D] (or [T,C,h,w]) per video, written to a temp file then renamed
                                   (a name over 255 bytes shortened, with a digest of the video's key)
    manifest.json                  per video: relative path, label, frame indices kept, source fps, shape, the
                                   feature file's size, the video file's size, mtime and SHA-256, ...
    errors.json                    videos that could not be read, with the reason and the file's size, mtime and
                                   SHA-256, and whether this user could read it
    journal-<rank>-<host>-<pid>.jsonl  progress of a run in flight, one file per process (merged into the two
                                   files above when it ends)
    finalize.lock                  held while journals are merged, so concurrent runs never lose each other's lines
    journal-<rank>-<host>-<pid>.folded  bytes of a journal still being written that the manifest already holds

A killed run loses at most the video it was writing: arrays appear whole or not at all (rename is atomic), and a
video counts as done only once its journal line is written after its array, and only while its array is there at the
size it was written (a feature file deleted or truncated since is extracted again). Every process appends to a
journal of its own, holding a lock on it while it runs, so a second extraction into the same cache (a parallel sweep,
another terminal) neither glues its lines onto a line a killed run left half-written nor has its journal deleted under
it: merging happens under ``finalize.lock`` and removes only journals whose writer has finished. Each journal line
carries the time it was written and lines are applied oldest first, so the newest word on a video wins whatever the
journals are called (a killed run's stale error never overrides a later run's success); a journal still being
written when another run folds it gets a ``.folded`` mark of how much of it the manifest holds, so its older lines
are not applied again over the newer words folded with them. The next run reads manifest
and journals, skips what is done, and ends by rewriting ``manifest.json`` and ``errors.json`` sorted, without the
times, so a resumed cache is byte-identical to an uninterrupted one. A run with nothing to do opens no journal and
writes nothing, so a finished cache can be read from a read-only location. A manifest or error list damaged from
outside (they are only ever replaced whole) is taken as lost, with a warning: what it recorded is done again.

A video that failed is not decoded again while its file stays as it was (a dataset with a few hundred corrupt clips
would otherwise pay for them on every fit); a replaced or repaired file is, and so is one that this user could not
read then and can now (chmod changes neither size nor time), and ``retry_failed`` tries them all again
(a decoder killed for memory is not the file's fault). A video file counts as the one a record was made from while its
size and modification time are unchanged, or, with a new time, while its bytes are (a dataset copied without its
times, a re-mount): the decoding processes hash each file as they read it. Frames are batched to a fixed size (the last batch is
zero-padded) so a frame's features never depend on which other frames shared its batch; the size itself changes the
CNN's rounding, so it is part of the key.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple, TextIO, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from vidrnn.backbones import BackboneSpec, FrozenBackbone, feature_precision
from vidrnn.cache_keys import Check, Freshness, Stamped, recheck, settings_key
from vidrnn.distributed import require_agreement, said_here, warn_once, world
from vidrnn.embedding import FailedVideo, VideoItem, embed_videos
from vidrnn.files import (
    NAME_MAX,
    SourceIdentity,
    atomic_write,
    atomic_write_bytes,
    fitted_name,
    nearest_existing,
    source_identity,
    unwritable,
    writer_id,
)
from vidrnn.sampling import SamplingSpec
from vidrnn.text import counted
from vidrnn.video import ASSUMED_FPS, COUNTING_CONTAINERS, MAX_PLAUSIBLE_FPS, CutShort

__all__ = ["CACHE_VERSION", "CacheWriteError", "ExtractionReport", "FeatureCache", "extract_features", "feature_file"]

#: Bumped when the stored format or the extraction arithmetic changes, so old caches are not mistaken for new ones.
#: 2: the key holds the precision of the CNN (fp32 on CPU, fp16 autocast on CUDA) and the weights ``DEFAULT`` resolved to.
#: 3: a video whose container under-states its length is sampled over its real length (it was sampled over the stated
#: part), and a damaged stretch mid-file no longer ends a video.
CACHE_VERSION = 3

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
#: A video's record in the cache, the video, and whether the record is of its features (``video``) or of its failure
#: (``error``).
_Record = tuple[dict[str, Any], VideoItem, str]


class CacheWriteError(OSError):
    """The feature cache could not be written (a full disk, a read-only mount), said naming the cache and how to go on:
    the ``OSError`` underneath names no cache, or nothing at all (numpy's "20480 requested and 14272 written"). What
    was finished before it is kept, so the same command, once that is fixed, goes on from where it stopped."""


def _writing(method: Callable[..., _T]) -> Callable[..., _T]:
    """A :class:`FeatureCache` method that writes, its ``OSError`` raised as a :class:`CacheWriteError` naming the
    cache."""
    @functools.wraps(method)
    def writing(self: FeatureCache, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except CacheWriteError:
            raise
        except OSError as error:
            raise CacheWriteError(f"cannot write the cache {self.dir}: {error}; once that is fixed (room on its disk, "
                                  "a folder this user can write), the same command goes on from where it stopped"
                                  ) from error
    return writing


def _json_bytes(value: Any) -> bytes:
    """JSON with one list element (or key) per line: diffable, and small even for thousands of videos."""
    if isinstance(value, list):
        return ("[\n" + ",\n".join(json.dumps(v, sort_keys=True) for v in value) + "\n]\n").encode()
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


class FeatureCache:
    """One directory of features for one (backbone, sampling, videos root, precision, batch size) under a shared
    cache root.

    ``device`` is where the features are (or were) computed: it decides their arithmetic
    (:func:`vidrnn.backbones.feature_precision`), so a cache extracted on a GPU is found by runs that extract on a GPU,
    and a CPU run makes its own instead of adding float32 features to float16-autocast ones. ``batch_size`` is the
    number of frames per CNN batch :func:`extract_features` runs; it too changes the rounding, so a run with another
    batch size makes its own cache instead of mixing two arithmetics in one.
    """

    def __init__(self, cache_root: str | os.PathLike, backbone: BackboneSpec, sampling: SamplingSpec, videos_root: Path,
                 device: str | torch.device = "cpu", batch_size: int = 32):
        cache_root = Path(cache_root).expanduser()
        _check_cache_root(cache_root)
        self.videos_root = Path(videos_root).resolve()
        self.precision = feature_precision(device)
        # The videos root is part of the key: datasets with the same relative paths (two UCF101 copies, a demo and
        # a real set) can share one cache root without ever sharing features. So is the CNN's batch size: the same
        # frames in batches of 8 and of 32 round differently (about 0.4 % of the float16 values differ).
        self._spec = {
            "version": CACHE_VERSION,
            "backbone": backbone.identity(),
            "sampling": sampling.to_dict(),
            "videos_root": str(self.videos_root),
            "precision": self.precision,
            "batch_size": batch_size,
        }
        self.dir = cache_root / f"{backbone.name}-{backbone.pooling}-{settings_key(self._spec)}"
        self.backbone, self.sampling, self.batch_size = backbone, sampling, batch_size
        self._journal_file: TextIO | None = None
        self._last_written_ns = 0
        #: Records of files found with new times but the same bytes by the last :meth:`settled`, not yet written.
        self.renewed: list[dict[str, Any]] = []
        #: Files hashed by this cache's :meth:`settled`, by path, size and time: a fit lists the cache in prepare_data
        #: and again as it extracts, which hashed (and announced) every file with new times twice.
        self._digests: dict[tuple[Path, _SizeTime], Stamped | None] = {}
        self._damaged: set[Path] = set()  # manifest or error list found damaged, already warned about

    # -- reading -------------------------------------------------------------------------------------------------

    def _read_records(self, name: str) -> list[dict[str, Any]]:
        """The records of ``manifest.json`` or ``errors.json`` (none while it does not exist).

        Both are only ever replaced whole (:func:`~vidrnn.files.atomic_write`), so one that cannot be read as records
        was damaged from outside: it is taken as lost, with a warning naming it (once per cache), rather than stopping
        every command on this cache. What it recorded is then extracted (or tried) again — the feature files come out
        the same bytes — and it is written anew when that run ends.
        """
        path = self.dir / name
        try:
            records = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except ValueError as error:  # not JSON, or not UTF-8
            return self._lost(path, str(error))
        if not isinstance(records, list) or not all(isinstance(record, dict) and "path" in record
                                                    for record in records):
            return self._lost(path, "not a list of records")
        return records

    def _lost(self, path: Path, problem: str) -> list[dict[str, Any]]:
        """No records, for a file that cannot be read as any; said once per cache (by rank 0 alone: under torchrun
        every process reads the same file)."""
        if path not in self._damaged:
            self._damaged.add(path)
            warn_once(logger, "%s cannot be read (%s); it is taken as lost: the videos it recorded are extracted (or "
                      "tried) again, and it is written anew when that ends", path, problem)
        return []

    def _journal_lines(self, read: dict[Path, int] | None = None) -> list[dict[str, Any]]:
        """Every whole line of every journal not yet folded into the manifest, oldest first: by the time it was
        written, not by the journal's name (names hold process ids, and a newer run's id can sort first, e.g. after a
        container restart). Equal times keep the order of journal names, then of lines; a line without a time
        (written before times were) is oldest. ``read`` gets, per journal, how many bytes of whole lines it held."""
        lines = []
        for journal in sorted(self.dir.glob("journal-*.jsonl")):
            try:
                data = journal.read_bytes()
            except FileNotFoundError:  # merged and removed by another process since the listing
                continue
            whole = data[: data.rfind(b"\n") + 1]  # a line still being written (or cut by a kill) waits
            if read is not None:
                read[journal] = len(whole)
            for line in whole[_folded_bytes(journal):].decode("utf-8", "replace").splitlines():
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # the line a killed run was writing; its video is simply done again
        return sorted(lines, key=lambda line: line.get("written_ns", 0))

    def _state(self, read: dict[Path, int] | None = None) -> tuple[dict[str, dict], dict[str, dict]]:
        entries = {entry["path"]: entry for entry in self._read_records("manifest.json")}
        errors = {error["path"]: error for error in self._read_records("errors.json")}
        for line in self._journal_lines(read):
            # The time orders the lines only: kept out of the manifest, which must not depend on when it was made.
            record = {key: value for key, value in line.items() if key not in ("kind", "written_ns")}
            if line["kind"] == "video":
                entries[record["path"]] = record
                errors.pop(record["path"], None)
            else:
                errors[record["path"]] = record
                entries.pop(record["path"], None)
        return entries, errors

    def entries(self) -> dict[str, dict[str, Any]]:
        """Manifest entries of every finished video (including those of a run still in flight), by key."""
        return self._state()[0]

    def errors(self) -> dict[str, str]:
        """Reason for every video that could not be read, by key."""
        return {key: error["reason"] for key, error in self._state()[1].items()}

    def cut_short(self) -> dict[str, CutShort]:
        """Every cached video that held far fewer frames than its container states, by key (caches written before
        this was recorded say nothing of theirs)."""
        return {key: CutShort(**entry["cut_short"]) for key, entry in self.entries().items() if "cut_short" in entry}

    def settled(self, items: Sequence[VideoItem], retry_failed: bool = False) -> tuple[list[VideoItem], list[VideoItem]]:
        """The items whose file is cached as it is now, and those that failed as they are now (none with
        ``retry_failed``): neither needs decoding again. A video whose feature file is gone or not the size it was
        written at counts as not cached, so extraction repairs the cache instead of a fit failing mid-epoch.

        A file with a new modification time but the same size is hashed: the same bytes (a dataset copied without
        its times, re-mounted, touched) keep their features. Reading only: the new times wait in :attr:`renewed` for
        :meth:`record_renewed`, so that ranks listing the cache together never see one of them write."""
        cached, failed = self._recorded(items, retry_failed)
        current = self._current(cached + failed)
        return ([item for (_, item, _), kept in zip(cached, current[:len(cached)]) if kept],
                [item for (_, item, _), kept in zip(failed, current[len(cached):]) if kept])

    def _recorded(self, items: Sequence[VideoItem], retry_failed: bool) -> tuple[list[_Record], list[_Record]]:
        """The ``(record, item, kind)`` of the items this cache holds features of (intact, read as they would be
        now), and of those it holds a failure of that stands (none with ``retry_failed``), before their files are held
        to the records (:meth:`_current`, which may hash them): any other item waits to be extracted, whatever the
        files' bytes."""
        entries, errors = self._state()
        cached = [(entries[item.key], item, "video") for item in items if item.key in entries
                  and self._intact(entries[item.key]) and _rate_read_as_now(entries[item.key])
                  and _cut_as_read_now(entries[item.key], item.path)]
        failed = [] if retry_failed else [(errors[item.key], item, "error") for item in items if item.key in errors
                                          and not _readable_again(errors[item.key], item.path)]
        return cached, failed

    def _current(self, records: list[_Record]) -> list[bool]:
        """Whether each ``(record, item, kind)``'s file is still the one its record was made from, by size and time,
        and by bytes where the time alone changed (:func:`_source_check`). Hashing them takes minutes on a large
        dataset given new times (UCF101's 13,320 videos are 6.5 GB), so it is said before it begins, with a progress
        bar; the same bytes' new times wait in :attr:`renewed`."""
        self.renewed = []
        stamps = [_stat(item.path) for _, item, _ in records]
        to_hash = sum(_needs_bytes(record, stamp) and (item.path, stamp) not in self._digests
                      for (record, item, _), stamp in zip(records, stamps))
        if to_hash:
            warn_once(logger, "%s under %s have new modification times (copied without them, re-mounted or touched?): "
                      "checking their bytes; those unchanged keep their features", counted(to_hash, "video"),
                      self.videos_root)
        current = []
        with tqdm(total=to_hash, unit="video", desc="checking bytes", disable=not to_hash or not said_here()) as bar:
            for (record, item, kind), stamp in zip(records, stamps):
                check = _source_check(record, stamp, lambda: self._hashed_once(item.path, stamp, bar.update))
                if check.freshness is Freshness.RENEWED:
                    self.renewed.append({**record, "kind": kind, "source_mtime_ns": check.now.stamp.mtime_ns})
                current.append(check.freshness is not Freshness.CHANGED)
        return current

    def _hashed_once(self, path: Path, stamp: _SizeTime, on_hashed: Callable[[], object]) -> Stamped | None:
        """``path`` hashed (:func:`_hashed`), or as this cache hashed it at the same size and time."""
        if (path, stamp) not in self._digests:
            self._digests[path, stamp] = _hashed(path, on_hashed)
        return self._digests[path, stamp]

    def record_renewed(self, rank: int = 0) -> None:
        """Journal the new times :meth:`settled` found (same bytes), so the next run compares times again instead of
        hashing; folded by the next :meth:`finalize`. A cache that cannot be written (a read-only mount) is hashed
        again next time, with a warning."""
        if not self.renewed:
            return
        try:
            self.open_for_writing(rank)
            self._journal_all(self.renewed)
        except OSError as error:
            logger.warning("%d videos in %s have new modification times but the same bytes; the times cannot be "
                           "recorded (%s), so every run hashes them again", len(self.renewed), self.dir, error)
        self.renewed = []

    def load(self, key: str) -> np.ndarray:
        """The stored float16 features of one video. A file that cannot be read is named, with the way to repair it:
        numpy's own errors (a truncated array, an empty file) name none."""
        path = self.dir / feature_file(key)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise RuntimeError(f"{path}: the feature cache is damaged ({type(error).__name__}: {error}); run the "
                               "same `vidrnn extract` (or fit) again to extract this video anew (a damaged file that "
                               "kept its size must be deleted first)") from error

    def _intact(self, entry: dict[str, Any]) -> bool:
        """A manifest entry's feature file is there, at the size it was written (a cheap check: one ``stat``)."""
        try:
            return (self.dir / entry["file"]).stat().st_size == entry.get("file_bytes")
        except OSError:
            return False

    def require_writable(self, items: Sequence[VideoItem], retry_failed: bool = False) -> None:
        """Refuse (``ValueError`` naming the cache) a cache this user cannot write while any of ``items`` waits to be
        extracted into it: the run would fail only at its first write, after the CNN is built and the first batch
        decoded (a fit: after every check, with a traceback). A cache with nothing to extract is only read, so a
        finished one still serves from a read-only place; only then is it listed (:meth:`settled`). An item it holds
        no record of waits whatever its bytes, so the files with records are hashed (minutes for a dataset copied
        without its times) only when every item has one."""
        reason = unwritable(self.dir)
        if reason is None:
            return
        cached, failed = self._recorded(items, retry_failed)
        unrecorded = len(items) - len(cached) - len(failed)
        waiting = unrecorded or len(items) - sum(self._current(cached + failed))
        if waiting:
            raise ValueError(f"feature cache {self.dir}: {reason}, and {waiting} of {len(items)} videos wait to be "
                             "extracted into it; make it writable, or choose a cache folder this user can write "
                             "(--cache-dir; data.cache_dir for vidrnn fit)")

    # -- writing -------------------------------------------------------------------------------------------------

    @_writing
    def open_for_writing(self, rank: int = 0) -> None:
        """Create the directory and its ``spec.json`` (what these features are) if they do not exist yet, and this
        process's journal, locked while it writes."""
        spec_path = self.dir / "spec.json"
        if not spec_path.exists():
            atomic_write_bytes(spec_path, _json_bytes(self._spec))
        if self._journal_file is None:
            handle = (self.dir / f"journal-{rank}-{writer_id()}.jsonl").open("a", encoding="utf-8")
            fcntl.flock(handle, fcntl.LOCK_EX)
            if handle.tell() > 0:  # a file of an earlier process with this id: never glue onto its last line
                handle.write("\n")
            self._journal_file = handle

    def close_journal(self) -> None:
        """This process writes no more: its journal may be merged and removed (by any process's finalize)."""
        if self._journal_file is not None:
            self._journal_file.close()
            self._journal_file = None

    def _journal(self, record: dict[str, Any]) -> None:
        """Append one line (see :meth:`_journal_all`)."""
        self._journal_all([record])

    def _journal_all(self, records: list[dict[str, Any]]) -> None:
        """Append one line per record, each stamped with the time it was written (never earlier than this process's
        previous line, should the clock step back), so that the newest line on a video wins when journals are
        merged; flushed to disk once, after the last."""
        if self._journal_file is None:
            raise RuntimeError("open_for_writing() must come before writing to the cache")
        for record in records:
            self._last_written_ns = max(time.time_ns(), self._last_written_ns + 1)
            self._journal_file.write(json.dumps({**record, "written_ns": self._last_written_ns}, sort_keys=True) + "\n")
        self._journal_file.flush()
        os.fsync(self._journal_file.fileno())

    @_writing
    def write(self, item: VideoItem, features: np.ndarray, indices: np.ndarray, fps: float, source_frames: int,
              source: SourceIdentity | None, cut_short: CutShort | None = None) -> None:
        """Store one video's features atomically, then mark it done in this process's journal. ``source`` is the
        video file's identity as it was when it was decoded (a file replaced since is found stale next time, never
        recorded as current); ``cut_short``, where the video held far fewer frames than its container states, is
        recorded with it (``cut_short``: found and stated), so a run that reads it from the cache can still say so."""
        check_key(item.key)
        array = np.ascontiguousarray(features, dtype=np.float16)
        file = feature_file(item.key)
        path = self.dir / file
        atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))
        self._journal({
            "kind": "video",
            "path": item.key,
            "label": item.label,
            "file": file,
            "file_bytes": path.stat().st_size,
            "frames": int(array.shape[0]),
            "shape": list(array.shape),
            "indices": [int(i) for i in indices],
            "source_frames": int(source_frames),
            "source_fps": float(fps),
            **_source_fields(source),
            **({} if cut_short is None else {"cut_short": cut_short._asdict()}),
        })

    @_writing
    def write_error(self, item: VideoItem, reason: str, source: SourceIdentity | None) -> None:
        """Record why a video failed; ``source`` is its file's identity as it was before it was decoded (None when it
        could not be read at all): unchanged, it is not tried again. Whether this user could read it is part of that
        identity (``unreadable``): permissions fixed with chmod change neither its size nor its time, and it is tried
        again once it can be read (:meth:`settled`)."""
        record: dict[str, Any] = {"kind": "error", "path": item.key, "reason": reason}
        if source is not None:
            record.update(_source_fields(source))
        if not os.access(item.path, os.R_OK):
            record["unreadable"] = True
        self._journal(record)

    @_writing
    def finalize(self) -> None:
        """Fold the journals into sorted ``manifest.json`` and ``errors.json``, then remove the journals whose writers
        have finished (a run still writing keeps its own and merges it when it ends), and the temporary files that
        killed runs left behind. Without journals the two files already say everything: nothing is written (a
        finished cache on a read-only mount stays usable)."""
        self.close_journal()
        if not any(self.dir.glob("journal-*.jsonl")):
            return
        with (self.dir / "finalize.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            read: dict[Path, int] = {}
            entries, errors = self._state(read)
            # A run still writing keeps its journal, whose lines up to here are now in the manifest; marked as folded
            # (before the manifest is written: a reader in between redoes a video rather than applies a stale line),
            # they are not applied again over newer words the manifest holds, which keeps no times.
            writing = set()  # writer ids (host and process id) of the runs still writing
            finished = []
            for journal in read:
                with journal.open("a") as handle:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        writing.add(journal.stem.split("-", 2)[-1])  # its writer is still running
                        atomic_write_bytes(_folded_mark(journal), str(read[journal]).encode())
                        continue
                finished.append(journal)
            atomic_write_bytes(self.dir / "manifest.json", _json_bytes([entries[key] for key in sorted(entries)]))
            error_list = [errors[key] for key in sorted(errors)]
            atomic_write_bytes(self.dir / "errors.json", _json_bytes(error_list))
            for journal in finished:
                journal.unlink(missing_ok=True)
            for mark in self.dir.glob("journal-*.folded"):  # of journals merged and removed
                if not mark.with_suffix(".jsonl").exists():
                    mark.unlink(missing_ok=True)
            self._remove_leftovers(writing)

    def _remove_leftovers(self, writing: set[str]) -> None:
        """Remove the temporary files (``atomic_write``'s ``.NAME.WRITER.tmp``) of runs killed while writing them.

        A feature file is written only while its process holds its journal's lock, so one whose writer id has no
        locked journal is a dead run's (a process id reused by a live run only keeps a leftover one run longer); a
        manifest or error list is written only under ``finalize.lock``, held here. The spec, written before a run's
        journal exists, is left alone."""
        leftovers = [path for path in (self.dir / "features").rglob(".*.tmp")
                     if path.name.rsplit(".", 2)[-2] not in writing]
        leftovers += [*self.dir.glob(".manifest.json.*.tmp"), *self.dir.glob(".errors.json.*.tmp"),
                      *self.dir.glob(".journal-*.folded.*.tmp")]
        for path in leftovers:
            path.unlink(missing_ok=True)


def _readable_again(error: dict[str, Any], path: Path) -> bool:
    """Whether a video that failed while this user could not read it can be read now (one ``access`` call)."""
    return bool(error.get("unreadable")) and os.access(path, os.R_OK)


def _rate_read_as_now(entry: dict[str, Any]) -> bool:
    """Whether a video's features were made at the frame rate it is read at now. Entries made before implausible
    stated rates were replaced (:data:`vidrnn.video.MAX_PLAUSIBLE_FPS`) hold such a rate — 1000 fps chose 2 frames of a
    10 s clip under ``fps`` sampling — and are extracted again; a rare file, so the whole cache need not be."""
    return 0 < entry.get("source_fps", ASSUMED_FPS) <= MAX_PLAUSIBLE_FPS


def _cut_as_read_now(entry: dict[str, Any], path: Path) -> bool:
    """Whether a video recorded cut short was extracted as it is read now; entries that record no cut (every healthy
    video's) are kept as they are. Extracted again: one with the stated count as ``source_frames``, made before a
    cut-short video was sampled again over its real length (its chosen frames all before the cut, spread over the
    stated length), and one of a container that records no frame count (:data:`~vidrnn.video.COUNTING_CONTAINERS`),
    whose estimated count named a whole video cut short."""
    cut_short = entry.get("cut_short")
    return cut_short is None or (entry["source_frames"] == cut_short["found"]
                                 and path.suffix.lower() in COUNTING_CONTAINERS)


def _folded_mark(journal: Path) -> Path:
    """Where a journal's folded length is kept while its run goes on writing."""
    return journal.with_suffix(".folded")


def _folded_bytes(journal: Path) -> int:
    """How many bytes of ``journal`` are already in the manifest (0: none)."""
    try:
        return int(_folded_mark(journal).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _check_cache_root(cache_root: Path) -> None:
    """A cache root is a folder, or will be one: a file there (or in its place further up) is a wrong path, said
    before any work rather than as a NotADirectoryError once the first feature is written."""
    existing = nearest_existing(cache_root)
    if not existing.is_dir():
        raise ValueError(f"feature cache root {cache_root}: {existing} is a file, not a folder; choose a folder for "
                         "the cache (--cache-dir, data.cache_dir; it is created if needed)")


def check_key(key: str) -> None:
    """A video key names a file under the cache's ``features/``: relative, without ``..``, so that no key can write
    outside the cache. Checked on the key's text, so a whole dataset's keys are checked before any decoding starts."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{key!r}: a video key must stay inside the cache (a relative path without '..')")


def feature_file(key: str) -> str:
    """Where a video's features are kept, relative to the cache: ``features/<key>.npy``, its file name shortened
    (:func:`~vidrnn.files.fitted_name`, with a digest of the whole key) where ".npy" takes it past
    :data:`~vidrnn.files.NAME_MAX` bytes. A video's own name may be that long; every shorter one keeps the name it
    always had, so caches written before stay valid."""
    folder, _, name = f"features/{key}".rpartition("/")
    return f"{folder}/{fitted_name(name, '.npy', NAME_MAX, identity=key)}"


@dataclass
class ExtractionReport:
    """What one extraction run did."""

    cache_dir: Path
    extracted: int = 0
    skipped: int = 0
    failed: int = 0
    #: Videos not decoded again because they failed before and their file has not changed since.
    failed_before: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)
    #: Videos extracted from far fewer frames than their containers state (:class:`~vidrnn.video.CutShort`), said.
    cut_short: dict[str, str] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def total(cls, reports: Sequence[ExtractionReport]) -> ExtractionReport:
        """One report of the ranks that shared a run (``torchrun``): their counts summed over the longest rank's time;
        what every rank found before extracting — the videos cached or failed before — taken once."""
        first = reports[0]
        return cls(first.cache_dir, extracted=sum(report.extracted for report in reports), skipped=first.skipped,
                   failed=sum(report.failed for report in reports), failed_before=first.failed_before,
                   frames=sum(report.frames for report in reports),
                   seconds=max(report.seconds for report in reports),
                   failures={key: reason for report in reports for key, reason in report.failures.items()},
                   cut_short={key: note for report in reports for key, note in report.cut_short.items()})


def _source_fields(source: SourceIdentity | None) -> dict[str, Any]:
    """A record's fields for its source file (a file that could not be looked at is never current)."""
    if source is None:
        return {"source_bytes": -1, "source_mtime_ns": -1}
    fields: dict[str, Any] = {"source_bytes": source.size, "source_mtime_ns": source.mtime_ns}
    if source.sha256 is not None:
        fields["source_sha256"] = source.sha256
    return fields


class _SizeTime(NamedTuple):
    """A source file's stamp: what one ``stat`` tells again."""

    size: int
    mtime_ns: int


def _stat(path: Path) -> _SizeTime | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return _SizeTime(stat.st_size, stat.st_mtime_ns)


def _failed_identity(item: VideoItem, before: _SizeTime | None) -> SourceIdentity | None:
    """A failed video's identity as it was before it was decoded (``before``: size and time then), hashed only now
    that it failed (most videos don't) and only while the file is still the one that failed."""
    if before is None:
        return None
    now = source_identity(item.path)
    if now is None or (now.size, now.mtime_ns) != before:
        return SourceIdentity(*before, None)
    return now


def _source_check(record: dict[str, Any], now: _SizeTime | None, hashed: Callable[[], Stamped | None]) -> Check:
    """Whether the file whose size and time are ``now`` is still the one ``record`` was made from
    (:func:`~vidrnn.cache_keys.recheck`: its size and time, then its bytes, ``hashed`` giving them; on ``RENEWED``
    the size and time they were hashed at). A file of another size is ``CHANGED`` without being hashed: its bytes
    differ for certain."""
    if now is None or now.size != record.get("source_bytes"):
        return Check(Freshness.CHANGED)
    return recheck(_recorded_stamp(record), now, hashed)


def _recorded_stamp(record: dict[str, Any]) -> Stamped:
    return Stamped(_SizeTime(record["source_bytes"], record.get("source_mtime_ns")), record.get("source_sha256"))


def _needs_bytes(record: dict[str, Any], now: _SizeTime | None) -> bool:
    """Whether :func:`_source_check` will hash the file: its size is the recorded one, its time is not, and a digest
    was recorded to compare with."""
    if now is None or now.size != record.get("source_bytes"):
        return False
    recorded = _recorded_stamp(record)
    return now != recorded.stamp and recorded.digest is not None


def _hashed(path: Path, on_hashed: Callable[[], object]) -> Stamped | None:
    """The file at ``path`` as it is now, its bytes hashed (the digest ``None`` when it changed while it was hashed)."""
    identity = source_identity(path)
    on_hashed()
    return None if identity is None else Stamped(_SizeTime(identity.size, identity.mtime_ns), identity.sha256)


def extract_features(
    items: Sequence[VideoItem],
    cache: FeatureCache,
    backbone: FrozenBackbone,
    *,
    device: str | torch.device = "cpu",
    num_workers: int | None = None,
    limit: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
) -> ExtractionReport:
    """Fill ``cache`` with the features of ``items`` that are not in it yet.

    Videos are embedded by :func:`vidrnn.embedding.embed_videos` (decoding in ``num_workers`` processes, the CNN here
    on ``device``, frames of several videos sharing each batch of the cache's ``batch_size``). Unreadable videos land
    in the cache's error list and the rest carries on; they are not tried again while their file stays the same,
    unless ``retry_failed``. With nothing to do, nothing is written.

    Several ranks share the work in one of two ways. Without ``rank``/``world_size``, an initialised
    ``torch.distributed`` default group (``torchrun -m vidrnn extract``) shards it: every rank must call this, they
    read the cache's state together before any writes, rank ``r`` extracts items ``r, r+world_size, ...`` of the
    videos not yet cached, and rank 0 merges the journals after a barrier. With ``rank``/``world_size`` given, the
    process group is never touched, whether or not one exists: a caller that runs on one process while the others wait
    elsewhere (Lightning's ``prepare_data``, ``rank=0, world_size=1``) must not enter a collective they never join.
    Such a caller starts the ranks on the same cache state; ``world_size=1`` finalizes, larger worlds leave
    :meth:`FeatureCache.finalize` to the caller once every rank has finished.
    """
    if (rank is None) != (world_size is None):
        raise ValueError("give both rank and world_size, or neither (then torch.distributed decides)")
    distributed = rank is None and world()[1] > 1  # the process group shares the work, so its ranks keep in step
    if rank is None or world_size is None:
        rank, world_size = world()
    if backbone.spec != cache.backbone:
        raise ValueError(f"backbone {backbone.spec} does not match the cache's {cache.backbone}")
    device = torch.device(device)
    if feature_precision(device) != cache.precision:
        raise ValueError(f"the cache holds {cache.precision} features but {device} computes "
                         f"{feature_precision(device)}: open the cache with device={device.type!r}")
    backbone = backbone.to(device)
    if distributed:
        _require_same_work(items, cache)
    cached, failed_before = cache.settled(items, retry_failed)
    settled = {item.key for item in [*cached, *failed_before]}
    todo = [item for item in items if item.key not in settled]
    for item in todo:
        check_key(item.key)
    if distributed:
        # Every rank must shard the same list: one that read the cache after another rank's first write would skip
        # what it should do and repeat what another does.
        torch.distributed.barrier()
    if limit is not None:  # of the whole run's videos, before they are shared among the ranks
        todo = todo[:limit]
    todo = todo[rank::world_size]
    if rank == 0:  # after the ranks have listed the cache: one writer of what they all found
        cache.record_renewed(rank)
    errors = cache.errors()
    report = ExtractionReport(cache.dir, skipped=len(cached),
                              failed_before={item.key: errors[item.key] for item in failed_before})
    if todo:  # nothing to do writes nothing: a finished cache on a read-only mount is still usable
        _embed_into(cache, todo, backbone, report, device=device, num_workers=num_workers, rank=rank,
                    world_size=world_size, progress=progress and rank == 0)
    cache.close_journal()  # this rank writes no more: its journal may be folded
    if distributed:
        torch.distributed.barrier()
    if world_size == 1 or (distributed and rank == 0):
        cache.finalize()
    if distributed:
        torch.distributed.barrier()
    return report


def _require_same_work(items: Sequence[VideoItem], cache: FeatureCache) -> None:
    """Refuse (:class:`~vidrnn.distributed.RanksDisagree`, on every rank) ranks that would shard different work: each
    lists the videos from its own disk, so a node whose copy lacks one shares out another list (videos extracted twice,
    others never), and one reading the data under another path fills a cache directory of its own."""
    require_agreement({"the cache directory": [str(cache.dir)], "the videos to extract": [item.key for item in items]},
                      "Every rank must see the same videos under the same data root: a node's copy of it differs (a "
                      "video missing or added), or the ranks were given other paths or settings. Make the copies "
                      "alike, then run the same command on every node")


def _embed_into(cache: FeatureCache, todo: Sequence[VideoItem], backbone: FrozenBackbone, report: ExtractionReport, *,
                device: torch.device, num_workers: int | None, rank: int, world_size: int, progress: bool) -> None:
    """Embed ``todo`` into ``cache`` through this rank's journal, counting in ``report``; the progress bar (rank 0's
    alone: the ranks' bars overwrote each other) says when it counts one rank's share."""
    share = f" (rank {rank}'s share of {world_size} ranks)" if world_size > 1 else ""
    # Taken before decoding: a file replaced while it is decoded is tried again next time, never skipped.
    identities = {item.key: _stat(item.path) for item in todo}
    cache.open_for_writing(rank)
    try:
        start = time.perf_counter()
        with tqdm(total=len(todo), unit="video", desc=f"extract {cache.dir.name}{share}", disable=not progress,
                  mininterval=1.0) as bar:
            for video in embed_videos(todo, cache.sampling, backbone, device=device, batch_size=cache.batch_size,
                                      num_workers=num_workers, identify=True):
                if isinstance(video, FailedVideo):
                    cache.write_error(video.item, video.reason, _failed_identity(video.item, identities[video.item.key]))
                    report.failed += 1
                    report.failures[video.item.key] = video.reason
                else:
                    features = video.features.numpy()
                    decoded = video.decoded
                    cache.write(video.item, features, decoded["indices"], decoded["fps"], decoded["frames"],
                                decoded["source"], decoded["cut_short"])
                    if decoded["cut_short"] is not None:
                        _say_cut_short(video.item, decoded["cut_short"], report)
                    report.extracted += 1
                    report.frames += len(features)
                bar.update(1)
                report.seconds = time.perf_counter() - start
                bar.set_postfix(frames_per_s=f"{report.frames_per_second:.1f}", failed=report.failed, refresh=False)
        report.seconds = time.perf_counter() - start
    finally:
        # Also when cut short (an error, Ctrl-C): the journal's lock goes with it. An interrupted run in a notebook
        # lives on in the traceback, and the next run into this cache from the same process would wait for the lock
        # forever.
        cache.close_journal()


def _say_cut_short(item: VideoItem, shortfall: CutShort, report: ExtractionReport) -> None:
    """Say, as it is extracted (once: later runs read its features from the cache), that a video held far fewer frames
    than its container states, and count it in ``report``: its features are a usable result, but of a part of it."""
    logger.warning("%s: %s", item.path, shortfall)
    report.cut_short[item.key] = str(shortfall)

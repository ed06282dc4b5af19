"""Where simulated tracking runs are kept between fits: one file per sequence, in a folder per setting.

The frozen CNN runs once per (frame, simulated run); every later fit with the same settings reads the files back.
A folder's name carries a digest of everything the evidence depends on (the tracker's settings, the simulation's,
the CNN's arithmetic, :data:`EVIDENCE_VERSION`); a file's fingerprint carries what the sequence itself contributes
(its frames' path and count, the name, size and modification time of each frame file, a digest of its ground truth),
so an edited sequence is simulated again. Beside it a file keeps a digest of the frame files' bytes: frames given new
times with the same bytes (a dataset copied without its times, a re-mount) keep their runs, and the file is rewritten
with the new times, so the next fit compares times again. Files are
written atomically: a killed simulation leaves whole files and resumes with the sequences that are missing.

A sequence that cannot be simulated (an unreadable frame, frames that change size midway) gets a file too, holding only
why (:class:`Refused`): every process of a distributed fit reads the same verdict, and later fits leave it out without
decoding it again until its frames or ground truth change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidrnn.cache_keys import Freshness, Stamped, recheck, settings_key, short_digest
from vidrnn.data.tracking_sequences import TrackingSequence
from vidrnn.distributed import warn_once
from vidrnn.files import atomic_write, file_sha256, fitted_name, name_max
from vidrnn.tracker.simulation import EvidenceRuns
from vidrnn.video import image_files

__all__ = ["EVIDENCE_VERSION", "EvidenceCache", "Refused", "frames_as_read"]

logger = logging.getLogger(__name__)

#: Bump when the evidence computation changes, so old caches are not reused.
EVIDENCE_VERSION = 10

#: The arrays of :class:`EvidenceRuns`, stored under their own names.
_ARRAYS = ("evidence", "targets", "valid", "windows", "frame_size")


def _frame_files(frames: Path) -> list[Path]:
    return image_files(frames) if frames.is_dir() else [frames]


def _frames_stamp(frames: Path) -> str:
    """A digest of the name, size and modification time of every frame file (a video, or each image of a folder):
    stat calls only, no reading. A folder's own time would not do: a frame overwritten in place leaves it as it was."""
    stats = [(file.name, file.stat()) for file in _frame_files(frames)]
    return short_digest("\n".join(f"{name}|{stat.st_size}|{stat.st_mtime_ns}" for name, stat in stats).encode())


def _frames_content(frames: Path) -> str:
    """A digest of the name and bytes of every frame file: what the frames are, whatever their times."""
    return short_digest("\n".join(f"{file.name}|{file_sha256(file)}" for file in _frame_files(frames)).encode())


def frames_as_read(sequence: TrackingSequence) -> Stamped:
    """The sequence as it is now: its fingerprint by its frames' times (taken first, so that frames changed while
    they are hashed are found changed next time) and by their bytes. Taken before its runs are simulated, it is what
    they were made from (:meth:`EvidenceCache.save`)."""
    stamp = _fingerprint(sequence)
    return Stamped(stamp, _fingerprint(sequence, _frames_content(sequence.frames)))


def _fingerprint(sequence: TrackingSequence, stamp: str | None = None) -> str:
    """What the cached runs of a sequence depend on besides the settings: its frames (``stamp``: their names, sizes and
    times unless given) and its ground truth."""
    frames = _frames_stamp(sequence.frames) if stamp is None else stamp
    boxes = short_digest(np.ascontiguousarray(sequence.boxes).tobytes())
    return f"{sequence.frames.resolve()}|{frames}|{sequence.first_frame}|{sequence.num_frames}|{boxes}"


@dataclass(frozen=True)
class Refused:
    """A sequence found unusable when its runs were simulated, and why (the reader's message, with the path)."""

    reason: str


class EvidenceCache:
    """Simulated runs of sequences under ``root``, for one setting (``settings``: plain, JSON-able values)."""

    def __init__(self, root: Path, prefix: str, settings: dict[str, Any]) -> None:
        self.folder = Path(root) / f"{prefix}-{settings_key({'version': EVIDENCE_VERSION, **settings})}"

    def path(self, sequence: TrackingSequence) -> Path:
        """One file per sequence; two sequences of one name in different folders get different files. A name that
        would not fit the file system is shortened (:func:`~vidrnn.files.fitted_name`)."""
        stem = f"{sequence.name}-{short_digest(str(sequence.frames.resolve()).encode())[:8]}"
        return self.folder / fitted_name(stem, ".npz", name_max(self.folder))

    def load(self, sequence: TrackingSequence) -> EvidenceRuns | Refused | None:
        """The sequence's cached runs, or why it was refused, or ``None`` when neither is known for its current frames
        and boxes."""
        path = self.path(sequence)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as stored:
            recorded = Stamped(str(stored["fingerprint"]), str(stored["content"]) if "content" in stored else None)
            check = recheck(recorded, _fingerprint(sequence), lambda: frames_as_read(sequence))
            if check.freshness is Freshness.CHANGED:
                return None
            if check.freshness is Freshness.RENEWED:
                self._renew(sequence, {name: stored[name] for name in stored.files}, check.now)
            if "refused" in stored:
                return Refused(str(stored["refused"]))
            return EvidenceRuns(sequence.name, *(stored[name] for name in _ARRAYS))

    def _renew(self, sequence: TrackingSequence, arrays: dict[str, np.ndarray], now: Stamped) -> None:
        """Rewrite a file whose frames have new times but the same bytes under the new times, so the next load
        compares times again; a cache that cannot be written compares bytes every time, with a warning."""
        try:
            self._write(sequence, arrays, now)
        except OSError as error:
            warn_once(logger, "%s: frames with new times but the same bytes; the times cannot be recorded in %s "
                      "(%s), so every fit hashes them again", sequence.name, self.folder, error)

    def save(self, sequence: TrackingSequence, runs: EvidenceRuns | Refused, read: Stamped | None = None) -> None:
        """Keep the simulated runs of ``sequence``, or why it could not be simulated, under its frames as ``read``
        before the simulation (:func:`frames_as_read`; default: as they are now). Fingerprinted after a simulation of
        minutes, frames edited meanwhile would have the old frames' runs served for them from then on."""
        if isinstance(runs, Refused):
            arrays = {"refused": np.array(runs.reason)}
        else:
            arrays = {name: getattr(runs, name) for name in _ARRAYS}
        self._write(sequence, arrays, frames_as_read(sequence) if read is None else read)

    def _write(self, sequence: TrackingSequence, arrays: dict[str, np.ndarray], now: Stamped) -> None:
        """Store ``arrays`` under the sequence's fingerprints as its frames are now (``now``: by times, and bytes)."""
        fingerprints = {"fingerprint": np.array(now.stamp), "content": np.array(now.digest)}
        stored = {name: value for name, value in arrays.items() if name not in fingerprints} | fingerprints
        atomic_write(self.path(sequence), lambda handle: np.savez(handle, **stored))

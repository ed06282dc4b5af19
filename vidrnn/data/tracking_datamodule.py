"""Tracking data for Lightning: windows of cached evidence for training and validation, whole sequences for test.

Training and validation read the evidence of simulated tracking runs (:mod:`vidrnn.tracker.simulation`), computed once
per sequence and kept in an :class:`~vidrnn.data.evidence_cache.EvidenceCache`. Training samples random windows of
``window`` frames from those runs; validation uses fixed windows (seeded per index, so every epoch scores the same
samples) and, beside them, scores whole validation sequences from the matching run's evidence (the tracker's boxes
there are exactly what it reports online, because the matching box steers every search). Test sequences are handed
out whole, to be tracked online exactly as ``vidrnn track`` does
(:mod:`vidrnn.tracker.evaluation`).

Where the sequences come from (any folders :func:`~vidrnn.data.tracking_sequences.find_sequences` reads: OTB,
GOT-10k, LaSOT, VOT, TLD layouts):

* ``root: demo`` — the generated demo, made under ``demo_dir`` on first use, with its own train/val/test split;
* a ``root`` with ``train/`` and ``val/`` (and ``test/``) sub-folders of sequences;
* a ``root`` that is one folder of sequences, with ``val_sequences`` naming the ones held out for validation — whole
  sequences, never frames of a training sequence (``configs/track.yaml``: 10 of the 55 real training sequences).
  Every other sequence under ``root`` trains, at any depth, except those under ``root/test`` and ``test_root``. A
  name is a sequence's or its folder's: ``Jogging`` holds out both targets of OTB's Jogging folder (``Jogging-1``,
  ``Jogging-2``); holding out one of them while the other trains is refused, since both are the same frames.

``extra_train`` adds folders of sequences to training only (``demo``: the generated demo's training split).

Test sequences never train or validate: when a test sequence's frames (the same video or image folder, by its resolved
path) also belong to a training or validation sequence, the module refuses to hand out any split.

Every sequence must let a tracker start: a training or validation sequence whose first box is absent or too small to
track (:func:`~vidrnn.tracker.geometry.validate_box`), or that has no frame after it, is left out with a warning, and
so is one whose frames cannot be read as its ground truth needs them (an unreadable or damaged frame, frames that
change size midway, as some GOT-10k videos do), found when its runs are simulated and remembered in the cache; a
test sequence like that, or one
with no box to score after the first (GOT-10k's test split gives only the first box), is refused, since leaving it
out would score a smaller benchmark than the one named.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from functools import cached_property
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vidrnn.backbones import feature_precision
from vidrnn.data.evidence_cache import EvidenceCache, Refused, frames_as_read
from vidrnn.data.streams import WINDOWS, EpochKey, EpochSampler, draws, key_of, loader_generator, starting_epoch
from vidrnn.data.synthetic_tracking import ensure_tracking_demo, tracking_demo_generated
from vidrnn.data.tracking_sequences import (
    SequenceEntry, TrackingSequence, ground_truth_digest, load_entries, outside_frame_causes, sequence_entries, survey,
)
from vidrnn.devices import resolve_device
from vidrnn.distributed import evaluation_sampler, require_agreement, warn_once
from vidrnn.tracker.geometry import BoxOutsideFrame, validate_box
from vidrnn.tracker.search import MatchingSearch
from vidrnn.tracker.settings import TrackerSettings
from vidrnn.tracker.simulation import EvidenceRuns, simulate_runs
from vidrnn.video import VideoReadError

__all__ = ["FITTED_SEQUENCES", "FIT_SETTINGS", "SAME_SEQUENCES", "EvidenceWindows", "MatchingRuns",
           "TrackingDataModule", "fitted_record"]

logger = logging.getLogger(__name__)


class EvidenceWindows(Dataset):
    """``length`` windows of ``window`` consecutive steps from simulated runs.

    Training (``train=True``) draws a fresh window at every visit, from the seed, the epoch and the item
    (:mod:`vidrnn.data.streams`: under DDP the ranks' items differ, so do their windows); validation makes item ``i``
    the same window forever.
    """

    def __init__(self, runs: list[EvidenceRuns], window: int, length: int, seed: int, train: bool) -> None:
        self.runs = [run for run in runs if run.steps >= window and run.valid.any()]
        if not self.runs:
            raise ValueError(f"no sequence has the {window + 1} frames a training window needs")
        self.window, self.length, self.seed, self.train = window, length, seed, train
        weights = np.array([run.steps - window + 1 for run in self.runs], dtype=np.float64)
        self.weights = weights / weights.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, item: int | EpochKey) -> dict[str, torch.Tensor]:
        key = key_of(item)
        rng = draws(self.seed, WINDOWS, key) if self.train else np.random.default_rng((self.seed, key.index))
        run = self.runs[rng.choice(len(self.runs), p=self.weights)]
        walk = int(rng.integers(run.evidence.shape[0]))
        start = int(rng.integers(run.steps - self.window + 1))
        span = slice(start, start + self.window)
        return {
            "evidence": torch.from_numpy(run.evidence[walk, span]),
            "targets": torch.from_numpy(run.targets[walk, span]),
            "valid": torch.from_numpy(run.valid[walk, span]),
        }


class MatchingRuns(Dataset):
    """Run 0 of each sequence whole — the matching tracker online, as it tracks at run time — with what turns a head's
    answers into frame boxes and scores: ``evidence [N-1, EVIDENCE_DIM]``, ``windows [N-1, 3]``, ``frame_size [2]``
    and the ground truth ``truth [N, 4]`` (frame pixels, NaN where the target is absent); and the training ``window``
    (a recurrent head is also scored reading the sequence in windows of that many steps, as it was trained)."""

    def __init__(self, paired: list[tuple[TrackingSequence, EvidenceRuns]], window: int) -> None:
        self.items = [{"evidence": torch.from_numpy(run.evidence[0]), "windows": torch.from_numpy(run.windows[0]),
                       "frame_size": torch.from_numpy(run.frame_size), "truth": torch.from_numpy(sequence.boxes.copy()),
                       "window": torch.tensor(window)}
                      for sequence, run in paired]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def _cannot_start(sequence: TrackingSequence) -> str | None:
    """Why a tracker cannot start on ``sequence`` from its first box (absent, too small, or outside the frame where
    the frame's size is known: then with the likely causes, as boxes outside the frames are warned about), or
    ``None`` when it can."""
    if not sequence.visible[0]:
        return "no box in the first frame (target absent), where tracking starts"
    frame_shape = None if sequence.frame_size is None else sequence.frame_size[::-1]
    try:
        validate_box(sequence.boxes[0], frame_shape)
    except ValueError as error:
        where = f"{error} ({sequence.ground_truth}, x,y,w,h 0-based: {sequence.boxes[0].tolist()})"
        return f"{where}: {outside_frame_causes(sequence)}" if isinstance(error, BoxOutsideFrame) else where
    return None


def _too_short(sequence: TrackingSequence) -> str | None:
    """Why ``sequence`` has no frame to track — a tracker is given the first frame and answers from the second on — or
    ``None`` when it has one."""
    if sequence.num_frames > 1:
        return None
    frames, boxes = 1 + sequence.unannotated_frames, 1 + sequence.unmatched_boxes
    only_first = (": its ground truth holds only the first box (as GOT-10k's test split does, scored by its "
                  "evaluation server)" if frames > 1 else "")
    return (f"nothing to track: one frame with its box ({frames} frame{'s' * (frames > 1)} in {sequence.frames}, "
            f"{boxes} box{'es' * (boxes > 1)} in {sequence.ground_truth}){only_first}; a tracker is given the first "
            "frame's box and answers from the second frame on")


def _cannot_track(sequence: TrackingSequence) -> str | None:
    """Why a tracker cannot run on ``sequence`` (no first box to start from, or no frame after it), or ``None``."""
    return _cannot_start(sequence) or _too_short(sequence)


def _cannot_score(sequence: TrackingSequence) -> str | None:
    """Why ``sequence`` cannot be tracked and scored (the given first frame never counts), or ``None``."""
    problem = _cannot_track(sequence)
    if problem is None and sequence.visible.sum() < 2:
        return (f"{sequence.ground_truth}: the target is absent in every frame after the first, nothing to score")
    return problem


def _sharing_frames(role: str, entries: list[SequenceEntry], others: dict[str, list[SequenceEntry]]) -> str:
    """Which of ``entries`` (the ``role`` sequences) share their frames (the same resolved video file or image
    folder) with one of ``others`` (by the role of each group), in words; empty when none does."""
    seen = {other.frames.resolve(): (group_role, other) for group_role, group in others.items() for other in group}
    shared = [(entry, *seen[entry.frames.resolve()]) for entry in entries if entry.frames.resolve() in seen]
    return "; ".join(f"the {role} sequence {entry.name} ({entry.frames}) shares its frames with the {other_role} "
                     f"sequence {other.name} ({other.frames})" for entry, other_role, other in shared)


#: What likely made the ranks of one run list different sequences to share (validation here, the test sequences in
#: :func:`vidrnn.task_cli.tracking_scores.score_sequences`).
SAME_SEQUENCES = ("Every node must hold the same sequences under data.root and data.test_root: a node's copy differs (a "
                  "sequence missing or added). Make the copies alike, then run the same command on every node")


#: Where a tracker's checkpoint keeps the sequences its fit trained and validated on: ``{"train": [[name, digest],
#: ...], "val": [...]}``, each digest its ground truth's (:meth:`TrackingDataModule.state_dict`).
FITTED_SEQUENCES = "fitted_sequences"
#: Where it keeps the data settings of :data:`RESUME_SETTINGS`, by name.
FIT_SETTINGS = "fit_settings"
#: The data settings that decide, beside the sequences, what a fit trains and validates on: the simulated runs (seed,
#: walks, jitters), the windows drawn from them (seed, window, train_windows, val_windows) and their batches.
RESUME_SETTINGS = ("seed", "walks", "position_jitter", "scale_jitter", "window", "train_windows", "val_windows",
                   "batch_size")

_ROLES = {"train": "training", "val": "validation", "test": "test"}


def fitted_record(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a tracker's ``checkpoint`` records of the data its fit trained and validated on
    (:meth:`TrackingDataModule.state_dict`), or ``None`` for a checkpoint saved before it recorded that."""
    record = checkpoint.get(TrackingDataModule.__qualname__) or {}
    return record if FITTED_SEQUENCES in record else None


class TrackingDataModule(L.LightningDataModule):
    """Tracking sequences → cached simulated runs for training and validation, whole sequences for test.

    Args:
        root: ``demo``; a folder with ``train/`` and ``val/`` (and ``test/``) sub-folders of sequences; or one folder
            of sequences split by ``val_sequences``.
        val_sequences: names of the sequences under ``root`` held out for validation (``root`` without ``train/``
            and ``val/``), or of their folders (``Jogging``: all of OTB's Jogging targets, which share their frames
            and so validate together); every other sequence there trains, but for those under ``root/test`` and
            ``test_root``.
        extra_train: more folders of sequences for training only; ``demo`` is the generated demo's training split.
        demo_dir: where the generated demo lives: one seed's (``seed`` also seeds its scenes, and a ``demo_dir``
            holding another seed's demo is refused rather than replaced). A setting of its own, not ``root`` as for
            the classification demo, because ``extra_train: [demo]`` adds the demo's training sequences to a fit whose
            ``root`` holds others.
        test_root: evaluate on the sequences in this folder instead of ``root/test`` (e.g. a real benchmark such as
            ``../shared/data/tracking``; never train or choose settings on it).
        cache_dir: where simulated runs are cached (one file per sequence, reused while settings and data agree).
        tracker: how the matching tracker searches (:class:`~vidrnn.tracker.settings.TrackerSettings`); the
            simulated runs search the same way, and the CLI hands the same settings to the model.
        walks: simulated runs per sequence: the matching tracker online, plus ``walks - 1`` error walks.
        position_jitter / scale_jitter: standard deviation of the simulated error (target sizes; log-scale).
        window: frames per training window (the recurrent head's unrolled length).
        train_windows / val_windows: samples per epoch.
        device: where the CNN runs while caching (``auto``: CUDA when available).
        seed: the simulated runs' walks, the validation windows and every epoch's training windows (a run resumed
            from a checkpoint draws the windows the uninterrupted one would have).
        retry_failed: simulate again the sequences whose frames could not be read before (they are left out of later
            fits without being decoded again until their files change; a read that failed for a passing reason, such
            as a network drive, is retried with this).
    """

    def __init__(
        self,
        root: str = "demo",
        val_sequences: list[str] | None = None,
        extra_train: list[str] | None = None,
        demo_dir: str = "data/demo_tracking",
        test_root: str | None = None,
        cache_dir: str = "data/cache",
        tracker: TrackerSettings = TrackerSettings(),
        walks: int = 2,
        position_jitter: float = 0.15,
        scale_jitter: float = 0.1,
        window: int = 16,
        train_windows: int = 2048,
        val_windows: int = 256,
        batch_size: int = 32,
        seed: int = 0,
        device: str = "auto",
        retry_failed: bool = False,
    ) -> None:
        super().__init__()
        if window < 2 or walks < 1:
            raise ValueError(f"need window >= 2 and walks >= 1, got window={window}, walks={walks}")
        self.root, self.val_sequences, self.extra_train = root, val_sequences, list(extra_train or [])
        self.demo_dir, self.test_root = demo_dir, test_root
        self.settings = tracker
        self.walks, self.position_jitter, self.scale_jitter = walks, position_jitter, scale_jitter
        self.window, self.train_windows, self.val_windows = window, train_windows, val_windows
        self.batch_size, self.seed, self.device, self.retry_failed = batch_size, seed, device, retry_failed
        # The CNN's arithmetic (float16 autocast on CUDA, float32 elsewhere) changes the evidence: a run begun on a
        # GPU and resumed on a CPU must not mix the two in one cache.
        self.cache = EvidenceCache(Path(cache_dir), f"tracking-{tracker.backbone.name}", {
            "tracker": tracker.identity(), "walks": walks, "position_jitter": position_jitter,
            "scale_jitter": scale_jitter, "seed": seed, "precision": feature_precision(resolve_device(device)),
        })
        self._splits: dict[str, list[TrackingSequence]] = {}
        self._runs: dict[str, list[tuple[TrackingSequence, EvidenceRuns]]] = {}
        self._listed: dict[Path, list[SequenceEntry]] = {}
        self._digests: dict[SequenceEntry, str] = {}
        self._check_paths()

    def _check_paths(self) -> None:
        """Fail before anything slow when a folder or a named sequence is missing (the demo is made later)."""
        folders = [Path(folder) for folder in self.extra_train if folder != "demo"]
        if self.test_root is not None:
            folders.append(Path(self.test_root))
        if self.root != "demo":
            root = Path(self.root)
            folders += [root] if self.val_sequences is not None else [root / "train", root / "val"]
        missing = [str(folder) for folder in folders if not folder.is_dir()]
        if missing:
            raise FileNotFoundError(
                f"tracking data folder(s) not found: {', '.join(missing)}. data.root needs train/ and val/ "
                "sub-folders of sequences, or data.val_sequences naming the sequences of root to validate on (or use "
                "data.root=demo); data.test_root and data.extra_train must be existing folders."
            )
        if self.root == "demo" or "demo" in self.extra_train:
            tracking_demo_generated(self.demo_dir, self.seed, setting="data.demo_dir")  # refuses another seed's
        if self.val_sequences is not None and self.root == "demo":
            raise ValueError("data.val_sequences splits a folder of sequences; the demo (data.root=demo) has its own "
                             "train/ and val/ split")
        if self.val_sequences is not None:
            found = {name for entry in self._pool for name in (entry.name, entry.folder.name)}
            unknown = sorted(set(self.val_sequences) - found)
            if unknown:
                raise ValueError(f"data.val_sequences names sequences that are not under {self.root} (outside "
                                 f"{self._test_places_text}): {', '.join(unknown)}")
            if all(self._held_out(entry) for entry in self._pool):
                raise ValueError(f"data.val_sequences holds every sequence under {self.root}: none is left to train on")

    @property
    def data_root(self) -> Path:
        return Path(self.demo_dir) if self.root == "demo" else Path(self.root)

    @property
    def test_folder(self) -> Path:
        """Where the test sequences are: ``test_root``, else ``root/test``; scores name each sequence by its path
        under it."""
        return Path(self.test_root) if self.test_root else self.data_root / "test"

    @property
    def _test_places(self) -> list[Path]:
        """Where test sequences live: ``root/test`` (the default test split) and ``test_root``."""
        return [self.data_root / "test", *([Path(self.test_root)] if self.test_root else [])]

    @property
    def _test_places_text(self) -> str:
        return " and ".join(str(place) for place in self._test_places)

    @cached_property
    def _pool(self) -> list[SequenceEntry]:
        """With ``val_sequences``: the sequences under ``root`` that train or validate, at any depth — but none under
        ``root/test`` or ``test_root`` (as written or through symbolic links), which test."""
        places = [*self._test_places, *(place.resolve() for place in self._test_places)]

        def tests(folder: Path) -> bool:  # not entered at all: a fit never reads the test side
            return any(candidate.is_relative_to(place) for candidate in (folder, folder.resolve()) for place in places)

        return [entry for entry in sequence_entries(self.data_root, skip=tests) if not tests(entry.folder)]

    def _held_out(self, entry: SequenceEntry) -> bool:
        """Whether ``val_sequences`` names the sequence, or its folder: ``Jogging`` holds out both of OTB's Jogging
        targets, ``Jogging-1`` the first."""
        return entry.name in self.val_sequences or entry.folder.name in self.val_sequences

    def _found(self, folder: Path) -> list[SequenceEntry]:
        """The sequences under ``folder``: none while it does not exist (the demo until prepare_data makes it, a test
        split not given); a folder that holds none is an error that says what a sequence looks like. Listed once, so
        that what no sequence there reads is named in one warning."""
        if not folder.is_dir():
            return []
        if folder not in self._listed:
            found = survey(folder)
            if not found.entries:
                raise FileNotFoundError(found.none_found())
            found.warn_unread()
            self._listed[folder] = found.entries
        return self._listed[folder]

    def _entries(self, split: str) -> list[SequenceEntry]:
        """Where the sequences of ``train``, ``val`` or ``test`` are, found without decoding: what splits them and what
        :meth:`_check_apart` compares."""
        if split == "test":
            return self._found(self.test_folder)
        if self.val_sequences is None:
            entries = self._found(self.data_root / split)
        else:
            entries = [entry for entry in self._pool if self._held_out(entry) == (split == "val")]
        if split == "train":  # a new list: the root's is the one listed once (_found), not to be extended
            entries = [*entries, *(entry for folder in self.extra_train for entry in
                                   self._found(Path(self.demo_dir) / "train" if folder == "demo" else Path(folder)))]
        return entries

    def _check_apart(self) -> None:
        """Refuse splits that share frames, however they got there (``extra_train``, a ``test_root`` inside the training
        data, a symbolic link, one target of an OTB folder held out while its sibling trains): scores on frames that
        trained measure memory, not tracking."""
        train, val = self._entries("train"), self._entries("val")
        shared = _sharing_frames("validation", val, {"training": train})
        if shared:
            raise ValueError(f"{shared}. Validating on frames that train flatters the model. The targets of one OTB "
                             "folder (Jogging-1, Jogging-2) share its frames: name the folder (Jogging) in "
                             "data.val_sequences to validate on all of them, or none; other shared frames are one "
                             "sequence reached twice (a symbolic link): keep one")
        shared = _sharing_frames("test", self._readable_test_entries(), {"training": train, "validation": val})
        if shared:
            raise ValueError(f"{shared}. Test sequences must not train or validate: point data.test_root at a folder "
                             "outside data.root's training and validation sequences, and keep it out of "
                             "data.extra_train")

    def _readable_test_entries(self) -> list[SequenceEntry]:
        """The test side's sequences, to compare with the others; none when it cannot be listed (empty, or holding a
        malformed sequence): a fit, which never reads it, must not fail on it, and ``vidrnn test`` reports it."""
        try:
            return self._entries("test")
        except (OSError, ValueError) as error:
            logger.debug("test sequences not compared with the training ones: %s", error)
            return []

    def _trackable(self, sequences: list[TrackingSequence], split: str) -> list[TrackingSequence]:
        """The sequences that can be tracked: a tracker starts from the first frame's box and answers from the second
        frame on, so a training or validation sequence without a box there that it can start from, or without a
        second frame, is left out, with a warning. A test sequence is refused
        instead, and so is one with nothing to score: leaving it out (or averaging without it) would score a smaller
        benchmark than the one named, not comparable with other scores on it."""
        if not sequences:
            raise FileNotFoundError(f"no {split} sequences found under {self.data_root}")
        if split == "test":
            self._refuse_unscorable(sequences)
            return sequences
        kept = []
        for sequence in sequences:
            problem = _cannot_track(sequence)
            if problem:
                warn_once(logger, "%s (%s): %s: left out of %s", sequence.name, sequence.frames, problem, split)
            else:
                kept.append(sequence)
        return kept

    def _refuse_unscorable(self, sequences: list[TrackingSequence]) -> None:
        """Raise, naming each test sequence that cannot be tracked and scored and why (one line per reason)."""
        by_reason: dict[str, list[str]] = {}
        for sequence in sequences:
            problem = _cannot_score(sequence)
            if problem:
                by_reason.setdefault(problem, []).append(sequence.name)
        if by_reason:
            reasons = "; ".join(f"{', '.join(names)}: {problem}" for problem, names in by_reason.items())
            raise ValueError(f"{self.test_folder}: test sequences that cannot be tracked and scored: {reasons}. Fix "
                             "their ground truth or move them out of the test folder rather than score a smaller "
                             "benchmark")

    def sequences(self, split: str) -> list[TrackingSequence]:
        """The sequences of ``train``, ``val`` or ``test`` (loaded once: counting frames decodes them), once the test
        split is known to share no frames with the others."""
        if split not in self._splits:
            self._check_apart()
            self._splits[split] = self._load_split(split)
        return self._splits[split]

    def _load_split(self, split: str) -> list[TrackingSequence]:
        if split == "test" and not self.test_folder.is_dir():
            raise FileNotFoundError(f"no test sequences: {self.test_folder} does not exist; set data.test_root to a "
                                    "folder of sequences to evaluate on")
        return self._trackable(load_entries(self._entries(split)), split)

    def _digest(self, entry: SequenceEntry) -> str:
        """``entry``'s ground-truth digest (:func:`ground_truth_digest`), read once."""
        if entry not in self._digests:
            self._digests[entry] = ground_truth_digest(entry)
        return self._digests[entry]

    def _fingerprints(self, split: str) -> list[list[str]]:
        """``[name, ground-truth digest]`` of each sequence of ``train`` or ``val``: a name alone may be another
        dataset's sequence (``seq01``), and a copy under another root is the same sequence."""
        return [[entry.name, self._digest(entry)] for entry in self._entries(split)]

    def state_dict(self) -> dict[str, Any]:
        """What Lightning keeps of this module in a checkpoint, once a fit has found its sequences: the settings of
        :data:`RESUME_SETTINGS` and each training and validation sequence (:meth:`_fingerprints`), which a resumed
        fit (:meth:`require_resumable`) and a test or validation (:meth:`require_unseen`) are held against."""
        if not {"train", "val"} <= self._splits.keys():
            return {}
        return {FIT_SETTINGS: {name: getattr(self, name) for name in RESUME_SETTINGS},
                FITTED_SEQUENCES: {split: self._fingerprints(split) for split in ("train", "val")}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the record is for checks made before a command starts (:func:`fitted_record`)."""

    def require_resumable(self, record: Mapping[str, Any], fix: str) -> None:
        """Refuse (``ValueError``) to resume a fit whose checkpoint ``record`` (:func:`fitted_record`) was trained on
        other data: another setting of :data:`RESUME_SETTINGS` draws other runs, windows or batches, so the epochs
        after the resume would train otherwise than those before and ``best.ckpt`` would compare epochs scored on
        different validation windows; other sequences (another ``data.root``, ``val_sequences`` or ``extra_train``)
        would validate on sequences it trained on, or train on those it validated on. ``fix`` says where its
        settings are."""
        differing = [f"data.{name}: {there} there, {getattr(self, name)} here"
                     for name, there in record[FIT_SETTINGS].items() if there != getattr(self, name)]
        if differing:
            raise ValueError(f"the checkpoint was trained with other data settings ({'; '.join(differing)}): the "
                             "epochs after the resume would train and validate on other windows than those before, and "
                             "best.ckpt would compare epochs scored on different sets. Resume with the data settings "
                             f"it was trained with ({fix}), or start a new fit without --ckpt_path")
        changed = [change for split in ("train", "val")
                   for change in self._changed_sequences(split, record[FITTED_SEQUENCES][split])]
        if changed:
            raise ValueError(f"the checkpoint was trained and validated on other sequences ({'; '.join(changed)}): "
                             "the epochs after the resume would train or validate on other sequences than those "
                             "before (one it trained on, validated, flatters it). Resume with data.root, "
                             f"data.val_sequences and data.extra_train finding the sequences it was fitted on ({fix}), "
                             "or start a new fit without --ckpt_path")

    def _changed_sequences(self, split: str, recorded: list[list[str]]) -> list[str]:
        """How ``split``'s sequences here differ from those ``recorded`` (by name and ground truth), in words."""
        here, there = {tuple(pair) for pair in self._fingerprints(split)}, {tuple(pair) for pair in recorded}
        role = _ROLES[split]
        added, missing = sorted(name for name, _ in here - there), sorted(name for name, _ in there - here)
        return ([f"{role} sequences here that it was not fitted on: {', '.join(added)}"] * bool(added)
                + [f"{role} sequences it was fitted on that are not here: {', '.join(missing)}"] * bool(missing))

    def require_unseen(self, record: Mapping[str, Any], split: str) -> None:
        """Refuse (``ValueError``) to score a checkpoint whose ``record`` (:func:`fitted_record`) shows it trained on
        a sequence of ``split`` (``val``), or trained or validated on one of ``test``: matched by the content of the
        ground truth, so a copy under another root or name is found, and a namesake in another dataset is not."""
        sides = ("train",) if split == "val" else ("train", "val")
        seen = {digest: (name, side) for side in sides for name, digest in record[FITTED_SEQUENCES][side]}
        entries = self._readable_test_entries() if split == "test" else self._entries(split)
        again = [(entry, *seen[self._digest(entry)]) for entry in entries if self._digest(entry) in seen]
        if again:
            named = "; ".join(f"the {_ROLES[split]} sequence {entry.name} ({entry.folder}) is the {_ROLES[side]} "
                              f"sequence {name} (the same ground truth)" for entry, name, side in again)
            raise ValueError(f"the checkpoint was fitted on sequences this command scores ({named}): its scores would "
                             "measure memory, not tracking. Score it on sequences it neither trained nor validated on "
                             f"({'data.test_root' if split == 'test' else 'data.root and data.val_sequences'})")

    def prepare_data(self) -> None:
        """Generate the demo if asked for, then simulate and cache the runs that are missing (rank 0 only)."""
        if self.root == "demo" or "demo" in self.extra_train:
            ensure_tracking_demo(self.demo_dir, seed=self.seed)
        todo = [sequence for split in ("train", "val") for sequence in self.sequences(split)
                if self._to_simulate(self.cache.load(sequence))]
        if not todo:
            return
        search = MatchingSearch(self.settings, resolve_device(self.device))
        for sequence in tqdm(todo, desc="simulating tracking runs", unit="sequence", mininterval=1.0):
            # Each sequence has its own random stream, so a resumed run caches what an uninterrupted one would.
            rng = np.random.default_rng([self.seed, *sequence.name.encode()])
            read = frames_as_read(sequence)
            frames = (frame for _, chunk in sequence.iter_frames(chunk_size=16) for frame in chunk)
            try:
                runs = simulate_runs(search, sequence.name, frames, sequence.boxes, self.walks, rng,
                                     self.position_jitter, self.scale_jitter)
            except VideoReadError as error:
                runs = Refused(str(error))
            self.cache.save(sequence, runs, read)

    def _to_simulate(self, cached: EvidenceRuns | Refused | None) -> bool:
        """Whether a sequence's runs are to be simulated: none cached, or refused before and ``retry_failed``."""
        return cached is None or (self.retry_failed and isinstance(cached, Refused))

    def _split_runs(self, split: str) -> list[tuple[TrackingSequence, EvidenceRuns]]:
        """The ``train`` or ``val`` sequences with their cached runs; those whose frames could not be read when the runs
        were simulated are left out, with a warning (every process reads the same verdicts from the cache)."""
        if split not in self._runs:
            paired = []
            for sequence in self.sequences(split):
                loaded = self.cache.load(sequence)
                if loaded is None:
                    raise RuntimeError(f"{split}/{sequence.name}: no cached runs; prepare_data() must run first")
                if isinstance(loaded, Refused):
                    warn_once(logger, "%s: left out of %s: %s", sequence.name, split, loaded.reason)
                else:
                    paired.append((sequence, loaded))
            self._runs[split] = paired
        return self._runs[split]

    def train_dataloader(self) -> DataLoader:
        runs = [run for _, run in self._split_runs("train")]
        windows = EvidenceWindows(runs, self.window, self.train_windows, self.seed, train=True)
        return DataLoader(windows, batch_size=self.batch_size, drop_last=True,
                          sampler=EpochSampler(len(windows), self.seed, shuffle=False, epoch=starting_epoch(self.trainer)),
                          generator=loader_generator(self.seed))

    def val_dataloader(self) -> list[DataLoader]:
        """Two loaders: fixed windows (the loss and window IoU), then whole validation sequences (success AUC of the
        tracker as it runs, from the matching run's cached evidence)."""
        paired = self._split_runs("val")
        require_agreement({"the validation sequences": [sequence.name for sequence, _ in paired]}, SAME_SEQUENCES)
        windows = EvidenceWindows([run for _, run in paired], self.window, self.val_windows, self.seed, train=False)
        sequences = MatchingRuns(paired, self.window)
        return [DataLoader(windows, batch_size=self.batch_size,
                           sampler=evaluation_sampler(windows, "the validation windows (data.val_windows)"),
                           generator=loader_generator(self.seed)),
                DataLoader(sequences, batch_size=None, sampler=evaluation_sampler(sequences, "the validation sequences"),
                           generator=loader_generator(self.seed))]

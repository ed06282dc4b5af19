"""Tracking data for Lightning: match evidence of simulated tracking runs for training, whole sequences for testing.

The recurrent head never sees pixels: its input per frame is the *evidence* of one template search (the response map,
its peak, the searched-for size — :meth:`vidrnn.tracking.Tracker.search`). The frozen CNN and the matcher have no
trainable parameters, so evidence can be computed once and cached, exactly like classification's frame features:
the CNN runs once per (frame, simulated run), and every training epoch afterwards costs milliseconds.

A simulated run is what an online tracker would see. Run 0 of each sequence *is* an online tracker — the
matching-only one, each search placed where its previous peak was — so the data holds the drifting, half-lost states
a real run visits. The other runs search around the **previous** frame's true box disturbed by a smooth random error
(an AR(1) walk in position and log-scale), because a tracker's last estimate is never exact and its errors persist
for several frames. Targets are the true boxes in each search crop's normalised coordinates; frames whose ground truth
is NaN (target absent), or whose target lies outside the search region, are masked out of the loss.

Training samples random windows of ``window`` frames from those runs; validation uses fixed windows (seeded per
index, so every epoch scores the same samples); test runs the tracker over whole sequences, online, exactly as
``vidrnn track`` does, and scores it with :mod:`vidrnn.metrics`.

Sequences are any folders :func:`vidrnn.data.tracking.find_sequences` reads (OTB, VOT, TLD layouts), so the same
module trains on the generated demo or on a real training set converted to one of those layouts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.data.synthetic import ensure_tracking_demo
from vidrnn.data.tracking import TrackingSequence, find_sequences
from vidrnn.models.tracker import EVIDENCE_DIM, TemplateMatcher
from vidrnn.search_region import SearchGeometry
from vidrnn.tracking import Tracker

__all__ = ["EvidenceRuns", "EvidenceWindows", "TrackingDataModule", "simulate_runs"]

logger = logging.getLogger(__name__)

#: Bump when the evidence computation changes, so old caches are not reused.
EVIDENCE_VERSION = 8

#: Strength of the simulated error's memory from one frame to the next (AR(1) coefficient).
ERROR_PERSISTENCE = 0.7


@dataclass(frozen=True)
class EvidenceRuns:
    """Simulated runs over one sequence: ``evidence [W, N-1, F]``, ``targets [W, N-1, 4]`` and ``valid [W, N-1]``
    (the step counts in the loss) for frames 1..N-1 under ``W`` simulated trackers."""

    name: str
    evidence: np.ndarray
    targets: np.ndarray
    valid: np.ndarray

    @property
    def steps(self) -> int:
        return self.evidence.shape[1]


def _last_visible(boxes: np.ndarray, index: int) -> np.ndarray:
    """The latest box at or before ``index`` that is not NaN (the last place the target was seen)."""
    for position in range(index, -1, -1):
        if not np.isnan(boxes[position]).any():
            return boxes[position]
    raise ValueError("no visible box at or before frame index %d" % index)


def _error_walks(rng: np.random.Generator, walks: int, steps: int, position: float, scale: float) -> np.ndarray:
    """``[walks, steps, 3]`` smooth errors: centre offset in target sizes (x, y), then log-scale."""
    spread = np.array([position, position, scale])
    errors = np.empty((walks, steps, 3))
    state = rng.normal(0.0, spread, size=(walks, 3))
    for step in range(steps):
        errors[:, step] = state
        state = ERROR_PERSISTENCE * state + rng.normal(0.0, spread * np.sqrt(1 - ERROR_PERSISTENCE**2), (walks, 3))
    return errors


def _disturbed(box: np.ndarray, error: np.ndarray) -> np.ndarray:
    """``box`` moved by ``error`` (centre offset in target sizes, log-scale)."""
    size = np.sqrt(box[2] * box[3])
    centre = box[:2] + box[2:] / 2 + error[:2] * size
    scaled = box[2:] * np.exp(error[2])
    return np.r_[centre - scaled / 2, scaled]


def simulate_runs(
    tracker: Tracker,
    sequence: TrackingSequence,
    walks: int,
    rng: np.random.Generator,
    position_jitter: float,
    scale_jitter: float,
) -> EvidenceRuns:
    """Search every frame of ``sequence`` as ``walks`` simulated trackers would.

    Run 0 is the matching-only tracker itself, online: each search goes where its previous peak was, so the runs
    contain the states a drifting tracker really visits (a head trained only around true boxes never sees them and,
    online, compounds its first mistakes). Runs 1.. search around the previous true box moved by a smooth error walk.
    Each run keeps its own template and updates it as the tracker does (``tracker.template_rate``) at the box it
    believed in — run 0 at its peak, a walk at the box it searched around — so the evidence carries the template
    drift the tracker will live with.
    A step counts (``valid``) when the target is visible and its centre lies inside the search region: when the
    search missed the target entirely, no evidence could say where it went.
    """
    truth = sequence.boxes
    errors = _error_walks(rng, walks, sequence.num_frames, position_jitter, scale_jitter)
    steps = sequence.num_frames - 1
    evidence = np.zeros((walks, steps, EVIDENCE_DIM), dtype=np.float32)
    targets = np.zeros((walks, steps, 4), dtype=np.float32)
    valid = np.zeros((walks, steps), dtype=bool)
    templates, matching_box = [], truth[0]
    for indices, frames in sequence.iter_frames(chunk_size=16):
        for index, frame in zip(indices, frames):
            if index == 0:
                templates = [tracker.template(frame, truth[0])] * walks
                continue
            previous = _last_visible(truth, index - 1)
            guesses = [matching_box, *(_disturbed(previous, errors[walk, index]) for walk in range(1, walks))]
            results = tracker.search([frame] * walks, guesses, torch.cat(templates))
            box = truth[index]
            for walk, result in enumerate(results):
                evidence[walk, index - 1] = result.evidence.cpu().numpy()
                target = result.window.box_to_crop(np.nan_to_num(box))
                targets[walk, index - 1] = target
                centre = target[:2] + target[2:] / 2
                valid[walk, index - 1] = not np.isnan(box).any() and bool(((centre > 0) & (centre < 1)).all())
            matching_box = results[0].matching_box
            believed = [matching_box, *guesses[1:]]
            templates = [tracker.updated_template(template, result, box)
                         for template, result, box in zip(templates, results, believed)]
    return EvidenceRuns(sequence.name, evidence, targets, valid)


class EvidenceWindows(Dataset):
    """``length`` windows of ``window`` consecutive steps from simulated runs.

    ``seed=None`` draws a fresh window on every access (training; the worker's torch RNG, seeded by Lightning, seeds
    it); an integer seed makes item ``i`` the same window forever (validation).
    """

    def __init__(self, runs: list[EvidenceRuns], window: int, length: int, seed: int | None = None) -> None:
        self.runs = [run for run in runs if run.steps >= window and run.valid.any()]
        if not self.runs:
            raise ValueError(f"no sequence has the {window + 1} frames a training window needs")
        self.window, self.length, self.seed = window, length, seed
        weights = np.array([run.steps - window + 1 for run in self.runs], dtype=np.float64)
        self.weights = weights / weights.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.seed is not None:
            rng = np.random.default_rng((self.seed, index))
        else:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        run = self.runs[rng.choice(len(self.runs), p=self.weights)]
        walk = int(rng.integers(run.evidence.shape[0]))
        start = int(rng.integers(run.steps - self.window + 1))
        span = slice(start, start + self.window)
        return {
            "evidence": torch.from_numpy(run.evidence[walk, span]),
            "targets": torch.from_numpy(run.targets[walk, span]),
            "valid": torch.from_numpy(run.valid[walk, span]),
        }


def _first_item(batch: list[Any]) -> Any:
    return batch[0]


def _fingerprint(sequence: TrackingSequence) -> str:
    """What the cached runs of a sequence depend on besides the settings: its frames and its ground truth."""
    stat = sequence.frames.stat()
    digest = hashlib.sha256(np.ascontiguousarray(sequence.boxes).tobytes()).hexdigest()[:16]
    return f"{sequence.frames.resolve()}|{stat.st_mtime_ns}|{sequence.num_frames}|{digest}"


class TrackingDataModule(L.LightningDataModule):
    """Tracking sequences → cached simulated runs for training and validation, whole sequences for test.

    Args:
        root: a folder with ``train/`` and ``val/`` (and ``test/``) sub-folders of sequences; ``"demo"`` generates
            the built-in demo under ``demo_dir`` on first use.
        test_root: evaluate on the sequences in this folder instead of ``root/test`` (e.g. a real benchmark such as
            ``../shared/data/tracking``; never train or choose settings on it).
        cache_dir: where simulated runs are cached (one file per sequence, reused while settings and data agree).
        backbone: the frozen CNN; ``pooling`` is forced to ``map`` and ``input_size`` to the crop size.
        geometry: search-region context, size factor and crop resolution.
        template_cells: the template's side in feature-map cells for a square target (odd; a box of another
            aspect gets as many cells, shaped like it: :meth:`TemplateMatcher.kernel_shape`).
        template_rate: how fast the template follows the target's appearance (see :class:`Tracker`); the simulated
            runs update their templates at this rate, as the trained tracker will.
        scale_rate: how fast the matching-only box follows the best-matching scale (see :class:`Tracker`): the
            matching-only run 0 moves this way, and the head learns corrections of that answer.
        hold_below: the search stays still while the response's peak stands less than this many standard deviations
            above its mean (see :class:`Tracker`; 0: never): run 0 waits out occlusions the way the tracker will.
        walks: simulated runs per sequence: the matching-only tracker online, plus walks - 1 error walks.
        position_jitter / scale_jitter: standard deviation of the simulated error (target sizes; log-scale).
        window: frames per training window (the recurrent head's unrolled length).
        train_windows / val_windows: samples per epoch.
        device: where the CNN runs while caching (``auto``: CUDA when available).
    """

    def __init__(
        self,
        root: str = "demo",
        demo_dir: str = "data/demo_tracking",
        test_root: str | None = None,
        cache_dir: str = "data/cache",
        backbone: BackboneSpec = BackboneSpec(layer="blocks.10"),
        geometry: SearchGeometry = SearchGeometry(),
        template_cells: int = 7,
        template_rate: float = 0.01,
        scale_rate: float = 0.3,
        hold_below: float = 2.5,
        walks: int = 2,
        position_jitter: float = 0.15,
        scale_jitter: float = 0.1,
        window: int = 16,
        train_windows: int = 2048,
        val_windows: int = 256,
        batch_size: int = 32,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        super().__init__()
        if window < 2 or walks < 1:
            raise ValueError(f"need window >= 2 and walks >= 1, got window={window}, walks={walks}")
        self.root, self.demo_dir, self.test_root, self.cache_dir = root, demo_dir, test_root, Path(cache_dir)
        self.backbone_spec = BackboneSpec(**{**backbone.to_dict(), "pooling": "map", "input_size": geometry.size})
        self.geometry, self.template_cells, self.template_rate = geometry, template_cells, template_rate
        self.scale_rate, self.hold_below = scale_rate, hold_below
        self.walks, self.position_jitter, self.scale_jitter = walks, position_jitter, scale_jitter
        self.window, self.train_windows, self.val_windows = window, train_windows, val_windows
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self._runs: dict[str, list[EvidenceRuns]] = {}
        TemplateMatcher(template_cells)  # refuses an even or non-positive size now, not after the cache is built
        if not 0.0 <= template_rate < 1.0:
            raise ValueError(f"template_rate must be in [0, 1), got {template_rate}")
        if not 0.0 <= scale_rate <= 1.0:
            raise ValueError(f"scale_rate must be in [0, 1], got {scale_rate}")
        if hold_below < 0.0:
            raise ValueError(f"hold_below must be >= 0 (0: never hold the search), got {hold_below}")
        self._check_paths()

    def _check_paths(self) -> None:
        """Fail before anything slow when a folder is missing (the demo is generated later, in prepare_data)."""
        folders = [] if self.root == "demo" else [Path(self.root) / split for split in ("train", "val")]
        if self.test_root is not None:
            folders.append(Path(self.test_root))
        missing = [str(folder) for folder in folders if not folder.is_dir()]
        if missing:
            raise FileNotFoundError(
                f"tracking data folder(s) not found: {', '.join(missing)}. data.root needs train/ and val/ "
                "sub-folders of sequences (or use data.root=demo); data.test_root must be an existing folder."
            )

    @property
    def data_root(self) -> Path:
        return Path(self.demo_dir) if self.root == "demo" else Path(self.root)

    @property
    def cache_folder(self) -> Path:
        """One folder per setting of everything the evidence depends on."""
        settings = {
            "version": EVIDENCE_VERSION, "backbone": self.backbone_spec.identity(), "geometry": asdict(self.geometry),
            "template_cells": self.template_cells, "template_rate": self.template_rate, "scale_rate": self.scale_rate,
            "hold_below": self.hold_below, "walks": self.walks, "position_jitter": self.position_jitter,
            "scale_jitter": self.scale_jitter, "seed": self.seed,
        }
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_dir / f"tracking-{self.backbone_spec.name}-{key}"

    def _sequences(self, folder: Path) -> list[TrackingSequence]:
        """The sequences in ``folder`` that can be tracked: a tracker starts from the first frame's box, so a
        sequence whose target is absent there is left out, with a warning."""
        sequences = find_sequences(folder)
        if not sequences:
            raise FileNotFoundError(f"{folder}: no tracking sequences found (expected OTB, VOT or TLD folders)")
        trackable = [sequence for sequence in sequences if sequence.visible[0]]
        for sequence in sequences:
            if not sequence.visible[0]:
                logger.warning("%s: no box in the first frame (target absent): left out", sequence.frames)
        return trackable

    def _cache_file(self, split: str, sequence: TrackingSequence) -> Path:
        return self.cache_folder / split / f"{sequence.name}.npz"

    def _load(self, path: Path, sequence: TrackingSequence) -> EvidenceRuns | None:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["fingerprint"]) != _fingerprint(sequence):
                return None
            return EvidenceRuns(sequence.name, stored["evidence"], stored["targets"], stored["valid"])

    def prepare_data(self) -> None:
        """Generate the demo if asked for, then simulate and cache the runs that are missing (rank 0 only)."""
        if self.root == "demo":
            ensure_tracking_demo(self.demo_dir, seed=self.seed)
        todo = [(split, sequence) for split in ("train", "val") for sequence in self._sequences(self.data_root / split)
                if self._load(self._cache_file(split, sequence), sequence) is None]
        if not todo:
            return
        from vidrnn.inference import resolve_device

        tracker = Tracker(build_backbone(self.backbone_spec), self.geometry, TemplateMatcher(self.template_cells),
                          device=resolve_device(self.device), template_rate=self.template_rate,
                          scale_rate=self.scale_rate, hold_below=self.hold_below)
        for split, sequence in tqdm(todo, desc="simulating tracking runs", unit="sequence", mininterval=1.0):
            # Each sequence has its own random stream, so a resumed run caches what an uninterrupted one would.
            rng = np.random.default_rng([self.seed, *sequence.name.encode()])
            runs = simulate_runs(tracker, sequence, self.walks, rng, self.position_jitter, self.scale_jitter)
            path = self._cache_file(split, sequence)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, evidence=runs.evidence, targets=runs.targets, valid=runs.valid,
                         fingerprint=np.array(_fingerprint(sequence)))
            os.replace(temporary, path)

    def _split_runs(self, split: str) -> list[EvidenceRuns]:
        if split not in self._runs:
            runs = []
            for sequence in self._sequences(self.data_root / split):
                loaded = self._load(self._cache_file(split, sequence), sequence)
                if loaded is None:
                    raise RuntimeError(f"{split}/{sequence.name}: no cached runs; prepare_data() must run first")
                runs.append(loaded)
            self._runs[split] = runs
        return self._runs[split]

    def train_dataloader(self) -> DataLoader:
        windows = EvidenceWindows(self._split_runs("train"), self.window, self.train_windows)
        return DataLoader(windows, batch_size=self.batch_size, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        windows = EvidenceWindows(self._split_runs("val"), self.window, self.val_windows, seed=self.seed)
        return DataLoader(windows, batch_size=self.batch_size)

    def test_sequences(self) -> list[TrackingSequence]:
        return self._sequences(Path(self.test_root) if self.test_root else self.data_root / "test")

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_sequences(), batch_size=1, collate_fn=_first_item)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, TrackingSequence):  # a test sequence is paths and boxes: frames are read as it is tracked
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

"""The Lightning data module for classification: dataset index → feature cache → batches of variable-length sequences.

The slow part (running the CNN over every video) happens once, in ``prepare_data`` on one process per node; every
epoch after that reads small float16 arrays. Time steps are sampled from the cached sequence: random offsets inside
equal segments while training (TSN's augmentation), the segment centres when evaluating, so evaluation is
reproducible.

Splits stay honest: UCF101 uses its official fold, a class-folder dataset its recorded group-keeping split, and the
validation set is carved out of the training side by whole groups, never from the test side.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidrnn.backbones import BackboneSpec, build_backbone
from vidrnn.data.folders import folder_index
from vidrnn.data.records import DatasetIndex, VideoRecord
from vidrnn.data.synthetic import ensure_demo_data
from vidrnn.data.ucf101 import ucf101_index
from vidrnn.features import FeatureCache, extract_features
from vidrnn.sampling import SamplingSpec, segment_indices

__all__ = ["SequenceBatch", "VideoDataModule", "collate_sequences"]

logger = logging.getLogger(__name__)


@dataclass
class SequenceBatch:
    """Padded features ``[B,T,D]`` with the true length of each clip, its label and its key in the cache."""

    features: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    keys: list[str]

    def to(self, device: torch.device | str) -> SequenceBatch:
        return SequenceBatch(self.features.to(device), self.lengths, self.labels.to(device), self.keys)


def collate_sequences(items: Sequence[tuple[np.ndarray, int, str]]) -> SequenceBatch:
    """Pad a list of ``(features [t,D], label, key)`` to the longest ``t``; lengths travel with the batch."""
    lengths = torch.tensor([len(features) for features, _, _ in items], dtype=torch.int64)
    padded = torch.zeros(len(items), int(lengths.max()), *items[0][0].shape[1:], dtype=torch.float32)
    for row, (features, _, _) in enumerate(items):
        padded[row, : len(features)] = torch.from_numpy(np.asarray(features, dtype=np.float32))
    labels = torch.tensor([label for _, label, _ in items], dtype=torch.int64)
    return SequenceBatch(padded, lengths, labels, [key for _, _, key in items])


class _CachedSequences(Dataset):
    """Clips of one split, read from the feature cache, ``steps`` time steps sampled per clip."""

    def __init__(self, cache: FeatureCache, keys: list[str], labels: list[int], steps: int, train: bool, seed: int):
        self.cache, self.keys, self.labels = cache, keys, labels
        self.steps = steps
        # Training draws new segment offsets at every visit; evaluation takes the centres (no generator).
        self.rng = np.random.default_rng(seed) if train else None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, position: int) -> tuple[np.ndarray, int, str]:
        features = self.cache.load(self.keys[position])
        chosen = segment_indices(len(features), self.steps, self.rng)
        return features[chosen], self.labels[position], self.keys[position]


def _validation_groups(train: list[VideoRecord], fraction: float, seed: int) -> set[tuple[str, str | None]]:
    """Whole (class, group) units moved from train to validation, per class, seeded."""
    chosen: set[tuple[str, str | None]] = set()
    rng = random.Random(seed)
    for label in sorted({record.label for record in train}):
        groups = sorted({record.group or record.path.name for record in train if record.label == label})
        if len(groups) < 2:
            continue
        count = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        chosen |= {(label, group) for group in rng.sample(groups, count)}
    return chosen


class VideoDataModule(L.LightningDataModule):
    """Video classification data over a feature cache.

    Args:
        root: UCF101 (the ``UCF-101`` folder or its parent), a folder of class folders, or where the demo data is
            generated on first use (``dataset: demo``).
        dataset: ``ucf101`` (official split lists), ``folders`` (``root/<class>/**/<video>``) or ``demo``.
        splits: UCF101 split lists folder; default ``ucfTrainTestlist`` beside ``UCF-101``.
        fold: UCF101 official split (1, 2 or 3).
        test_fraction: class folders only: share of each class's groups held out for testing.
        val_fraction: share of each class's training groups held out for validation (whole groups).
        cache_dir: feature cache root.
        backbone: the frozen CNN; its spec is stored with the features and in checkpoints.
        sampling: which frames are decoded and cached per video.
        steps: time steps the model sees per clip, sampled from the cached frames (random segment offsets when
            training, centred otherwise).
        batch_size, num_workers: for the sequence loaders (features are small; 0 workers is often fastest).
        extract_batch_size, extract_workers, device: for building the cache in ``prepare_data``.
        seed: split and sampling seed.
    """

    def __init__(
        self,
        root: str = "data/demo",
        dataset: Literal["ucf101", "folders", "demo"] = "demo",
        splits: str | None = None,
        fold: int = 1,
        test_fraction: float = 0.3,
        val_fraction: float = 0.2,
        cache_dir: str = "vidrnn-cache",
        backbone: BackboneSpec = BackboneSpec(),
        sampling: SamplingSpec = SamplingSpec(strategy="segments", num_segments=16),
        steps: int = 16,
        batch_size: int = 32,
        num_workers: int = 0,
        extract_batch_size: int = 32,
        extract_workers: int = 2,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError("steps must be at least 1")
        # Checkpoints are loaded with weights_only=True, which admits plain containers only: store the specs as dicts.
        self.save_hyperparameters(ignore=["backbone", "sampling"])
        self.hparams.update(backbone=backbone.to_dict(), sampling=sampling.to_dict())
        self.backbone_spec, self.sampling_spec = backbone, sampling
        self.index = self._build_index()  # fails fast on wrong paths, before any slow work
        self.cache = FeatureCache(cache_dir, backbone, sampling, self.index.root)
        self._feature_dim: int | None = None
        self._datasets: dict[str, _CachedSequences] = {}

    def _build_index(self) -> DatasetIndex:
        hp = self.hparams
        if hp.dataset == "demo":
            return ucf101_index(ensure_demo_data(hp.root, seed=hp.seed), fold=hp.fold)
        if hp.dataset == "ucf101":
            return ucf101_index(hp.root, hp.splits, hp.fold)
        return folder_index(hp.root, test_fraction=hp.test_fraction, seed=hp.seed)

    # -- what the model needs to know (linked into the model's hyperparameters by the CLI) --------------------

    @property
    def class_names(self) -> list[str]:
        return list(self.index.classes)

    @property
    def num_classes(self) -> int:
        return len(self.index.classes)

    @property
    def steps(self) -> int:
        return self.hparams.steps

    @property
    def feature_dim(self) -> int:
        """Length of a frame's feature vector; read from the cache when it exists, else from the backbone."""
        if self._feature_dim is None:
            entry = next(iter(self.cache.entries().values()), None)
            if entry is not None:
                self._feature_dim = int(np.prod(entry["shape"][1:]))
            else:
                self._feature_dim = build_backbone(self.backbone_spec).feature_dim
        return self._feature_dim

    # -- Lightning hooks ------------------------------------------------------------------------------------------

    def _device(self) -> str:
        if self.hparams.device != "auto":
            return self.hparams.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def prepare_data(self) -> None:
        """Extract features of every clip not yet cached (Lightning runs this on one process per node)."""
        hp = self.hparams
        items = self.index.video_items()
        entries = self.cache.entries()
        if all(item.key in entries and self.cache.is_current(entries[item.key], item) for item in items):
            return
        backbone = build_backbone(self.backbone_spec)
        report = extract_features(items, self.cache, backbone, device=self._device(), batch_size=hp.extract_batch_size,
                                  num_workers=hp.extract_workers, rank=0, world_size=1)
        if report.failed:
            logger.warning("%d videos could not be read and are left out; see %s", report.failed,
                           self.cache.dir / "errors.json")

    def setup(self, stage: str | None = None) -> None:
        entries = self.cache.entries()
        missing = {r for r in self.index.records if r.path.relative_to(self.index.root).as_posix() not in entries}
        if len(missing) == len(self.index.records):
            raise RuntimeError(f"no features cached in {self.cache.dir}; prepare_data did not run or every video failed")
        if missing:
            logger.warning("%d clips have no features (unreadable, see errors.json) and are left out", len(missing))
        train_records = self.index.split("train")
        held_out = _validation_groups(train_records, self.hparams.val_fraction, self.hparams.seed)
        splits = {
            "train": [r for r in train_records if (r.label, r.group or r.path.name) not in held_out],
            "val": [r for r in train_records if (r.label, r.group or r.path.name) in held_out],
            "test": self.index.split("test"),
        }
        for name, records in splits.items():
            present = [r for r in records if r not in missing]
            keys = [r.path.relative_to(self.index.root).as_posix() for r in present]
            labels = [self.index.label_index(r) for r in present]
            self._datasets[name] = _CachedSequences(self.cache, keys, labels, self.hparams.steps, name == "train",
                                                    self.hparams.seed)

    def _loader(self, split: str) -> DataLoader:
        dataset = self._datasets[split]
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=split == "train",
                          num_workers=self.hparams.num_workers, collate_fn=collate_sequences,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def transfer_batch_to_device(self, batch: SequenceBatch, device: torch.device, dataloader_idx: int) -> SequenceBatch:
        return batch.to(device)

    def split_keys(self, split: str) -> list[str]:
        """Cache keys (paths relative to the videos root) of one split, in loader order (unshuffled)."""
        return list(self._datasets[split].keys)

    @property
    def videos_root(self) -> Path:
        return self.index.root

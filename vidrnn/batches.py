"""Batches of variable-length sequences: what the data layer hands the models, and all the two share.

Clips differ in length; a batch is the padded features with each clip's true length (and its label and cache key),
so padding stays a storage detail the models can see through (see :mod:`vidrnn.models.temporal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SequenceBatch", "collate_sequences"]


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
    # numpy, on this thread alone: torch spreads a large fill over its thread pool, whose threads spin against
    # decoding processes for the cores when a Predictor pads many clips at once (see vidrnn.embedding).
    padded = np.zeros((len(items), int(lengths.max()), *items[0][0].shape[1:]), dtype=np.float32)
    for row, (features, _, _) in enumerate(items):
        padded[row, : len(features)] = features
    labels = torch.tensor([label for _, label, _ in items], dtype=torch.int64)
    return SequenceBatch(torch.from_numpy(padded), lengths, labels, [key for _, _, key in items])

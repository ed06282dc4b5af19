"""Random draws of training datasets that depend on the seed, the epoch and the item — on nothing else.

A training clip gets new segment offsets (a tracker a new window, an order task a new shuffle) at every visit. Drawn
from a generator the dataset holds, they would depend on where and when the dataset runs: DataLoader workers copy the
generator (four workers, four clips in a row with the same "random" offsets), DDP ranks hold equal ones, and a run
resumed from a checkpoint starts the generator afresh and replays its first epochs' draws instead of going on.

So every draw here is a function of ``(seed, stream, epoch, index)``: the same in any worker, on any rank and after a
resume, different from epoch to epoch. The epoch reaches the dataset in the keys the sampler yields
(:class:`EpochSampler`: ``EpochKey(epoch, index)``), which Lightning tells the epoch through ``set_epoch`` before
every training epoch — also through the ``DistributedSamplerWrapper`` it puts around the sampler under DDP, whose
ranks then take shares of the same keys (disjoint but for the few it repeats to give every rank as many; a repeated
key repeats its draws too).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["OFFSETS", "SHUFFLES", "WINDOWS", "EpochKey", "EpochSampler", "draws", "key_of", "loader_generator",
           "starting_epoch"]

#: Streams: independent draws for one item from one seed (in step with one stream, a clip's order-task shuffle would
#: repeat the random numbers of its segment offsets).
OFFSETS, SHUFFLES, WINDOWS = 0, 1, 2


class EpochKey(NamedTuple):
    """What a training dataset is indexed with: the item and the epoch it is visited in."""

    epoch: int
    index: int


class EpochSampler(Sampler[EpochKey]):
    """Every index of a dataset once per epoch, as :class:`EpochKey`; in an order drawn from ``(seed, epoch)`` when
    ``shuffle``, so a resumed run visits its remaining epochs in the order the uninterrupted one would have."""

    def __init__(self, size: int, seed: int, *, shuffle: bool, epoch: int = 0) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every training epoch."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[EpochKey]:
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.size) if self.shuffle
                 else np.arange(self.size))
        return (EpochKey(self.epoch, int(index)) for index in order)

    def __len__(self) -> int:
        return self.size


def starting_epoch(trainer: Any) -> int:
    """The epoch a training loader made now serves first (0 without a trainer).

    Lightning makes a loader's iterator before it calls ``set_epoch`` for the epoch — and loader workers start
    prefetching from the sampler as soon as the iterator exists — so a sampler that started at epoch 0 would hand a
    fit resumed at epoch ``e`` epoch 0's keys for its first batches (all of them, with few clips)."""
    return trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0


def key_of(item: int | EpochKey) -> EpochKey:
    """A dataset's argument as a key: a plain index (a dataset used by hand) is a visit in epoch 0."""
    return item if isinstance(item, EpochKey) else EpochKey(0, int(item))


def draws(seed: int, stream: int, key: EpochKey) -> np.random.Generator:
    """The generator for one visit of one item."""
    return np.random.default_rng([seed, stream, key.epoch, key.index])


def loader_generator(seed: int) -> torch.Generator:
    """A DataLoader's own generator: the seed each of its iterators draws for its workers comes from here, not from
    torch's global generator, whose state checkpoints carry (:mod:`vidrnn.random_state`) — a validation pass between
    a checkpoint and the next epoch would otherwise move it on in the uninterrupted run only."""
    return torch.Generator().manual_seed(seed)

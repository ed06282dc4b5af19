"""Temporal-order tasks: labels that every clip carries in itself, so any folder of video can train on them.

* **Arrow of time** (Pickup et al. 2014; Wei et al. 2018): was the clip played forwards or backwards?
* **Order verification** (Misra et al. 2016, "Shuffle and Learn"): are its segments in order, or shuffled?

Both are built on the feature cache, after the time steps are sampled: the frozen CNN sees one frame at a time, so
reversing a clip reverses its sequence of frame features exactly and nothing is extracted again. Every clip appears
twice, once as recorded (label 1) and once reversed or shuffled (label 0), in training and in evaluation alike: a
model blind to frame order gives both copies the same answer, so it is right on exactly one of them and scores
exactly 50 % — chance is a fact of the construction, not an estimate. A clip too short for its altered copy to differ
(:func:`shortest_alterable`) is left out by the data module, with a warning, and listed in the run's ``splits.json``
(``too_short``): it would be the same sequence under both labels.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from torch.utils.data import Dataset

from vidrnn.data.streams import OFFSETS, SHUFFLES, EpochKey, draws, key_of
from vidrnn.objectives import ORDER_CLASSES, Objective

__all__ = ["TASK_NAMES", "OrderTask", "reverse_steps", "shortest_alterable", "shuffle_parts"]

#: Key suffix of a clip's altered copy (in predictions and in the analysis notebook).
_ALTERED = {"arrow_of_time": "@backwards", "order_verification": "@shuffled"}

#: What each task is called in a message.
TASK_NAMES = {"arrow_of_time": "the arrow of time", "order_verification": "order verification"}


def shortest_alterable(objective: Objective, parts: int) -> int:
    """The fewest cached frames a clip needs for its altered copy to differ from it: 2 to be reversed, ``parts`` to
    be cut into that many parts and shuffled. A shorter clip would be shown twice as the same sequence, once under
    each label — a contradiction in training and a coin flip in every score — so the data module leaves it out."""
    return 2 if objective == "arrow_of_time" else parts


def reverse_steps(features: np.ndarray) -> np.ndarray:
    """The clip played backwards: its time steps in reverse order."""
    return features[::-1].copy()


def shuffle_parts(features: np.ndarray, parts: int, rng: np.random.Generator) -> np.ndarray:
    """Cut the steps into ``parts`` contiguous parts of near-equal length and put them in a random other order.

    Whole parts move, not single steps: inside a part the clip still flows, so the model has to find where the
    parts join rather than notice that every step jumps. The order is never the original one (a clip with fewer
    steps than two parts is returned as it is).
    """
    count = min(parts, len(features))
    if count < 2:
        return features.copy()
    pieces = np.array_split(features, count)
    order = np.arange(count)
    while (order == np.arange(count)).all():
        order = rng.permutation(count)
    return np.concatenate([pieces[position] for position in order])


class SampledClips(Protocol):
    """Clips whose steps are sampled with a generator the caller gives (the data module's cached sequences)."""

    def __len__(self) -> int: ...

    def sample(self, position: int, rng: np.random.Generator | None) -> tuple[np.ndarray, int, str]: ...


class OrderTask(Dataset):
    """Each clip of ``clips`` twice: as recorded (label 1) and reversed or shuffled (label 0).

    ``clips`` gives ``(features [t,D], label, key)`` from its ``sample(position, rng)``; the label is dropped. Item
    ``2i + 1`` is clip ``i`` as sampled, item ``2i`` its altered copy. Training (``train=True``) samples the clip
    afresh for each copy (new segment offsets) and shuffles it anew at every visit, drawn from the seed, the epoch and
    the item (:mod:`vidrnn.data.streams`); evaluation takes the same centred steps for both copies and a shuffle fixed
    by ``seed`` and the clip's position, so it is reproducible.
    """

    def __init__(self, clips: SampledClips, objective: Objective, train: bool, seed: int, parts: int = 4) -> None:
        if objective not in ORDER_CLASSES:
            raise ValueError(f"{objective!r} is not an order task; use one of {', '.join(ORDER_CLASSES)}")
        if parts < 2:
            raise ValueError(f"order verification needs at least 2 parts to shuffle, got {parts}")
        self.clips, self.objective, self.parts, self.seed, self.train = clips, objective, parts, seed, train

    def __len__(self) -> int:
        return 2 * len(self.clips)

    def __getitem__(self, item: int | EpochKey) -> tuple[np.ndarray, int, str]:
        visit = key_of(item)
        clip, as_recorded = divmod(visit.index, 2)
        features, _, key = self.clips.sample(clip, draws(self.seed, OFFSETS, visit) if self.train else None)
        if as_recorded:
            return features, 1, key
        return self._alter(features, clip, visit), 0, key + _ALTERED[self.objective]

    def _alter(self, features: np.ndarray, clip: int, visit: EpochKey) -> np.ndarray:
        if self.objective == "arrow_of_time":
            return reverse_steps(features)
        rng = draws(self.seed, SHUFFLES, visit) if self.train else np.random.default_rng([self.seed, clip])
        return shuffle_parts(features, self.parts, rng)

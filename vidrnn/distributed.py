"""Evaluation shared by several processes (Lightning's DDP): every clip and every sequence counted exactly once.

Lightning's default distributed sampler pads each rank's share with repeats so that all ranks run the same number of
batches: right for training, wrong for a test set, where the repeated clips would count twice. Evaluation loaders
therefore shard without repeats (ranks may differ by one item; nothing collective runs per batch), metrics reduce
their states across ranks (torchmetrics), and files written once per run — predictions, tracking scores — hold every
rank's rows, gathered to rank 0, which alone writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, Sampler

__all__ = ["evaluation_sampler", "gather_rows", "rank_share"]

T = TypeVar("T")


def _world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 without an initialised process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evaluation_sampler(dataset: Dataset) -> Sampler | None:
    """Under several processes, a sampler giving this rank items ``rank, rank + world, ...`` once each; else ``None``
    (the loader's own order). Lightning keeps a sampler that is already distributed instead of adding its own."""
    rank, world = _world()
    if world == 1:
        return None
    return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)


def rank_share(items: Sequence[T]) -> list[T]:
    """This rank's items of a list every rank holds in the same order: ``items[rank::world]``."""
    rank, world = _world()
    return list(items[rank::world])


def gather_rows(rows: Sequence[T]) -> list[T]:
    """Every rank's ``rows``, concatenated in rank order, on every rank (this process's own rows alone)."""
    rank, world = _world()
    if world == 1:
        return list(rows)
    everyone: list[list[T] | None] = [None] * world
    dist.all_gather_object(everyone, list(rows))
    return [row for part in everyone for row in (part or [])]

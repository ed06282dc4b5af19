"""Evaluation shared by several processes (Lightning's DDP): every clip and every sequence counted exactly once.

Lightning's default distributed sampler pads each rank's share with repeats so that all ranks run the same number of
batches: right for training, wrong for a test set, where the repeated clips would count twice. Evaluation loaders
therefore shard without repeats (ranks may differ by one item; nothing collective runs per batch), metrics reduce
their states across ranks (torchmetrics), and files written once per run — predictions, tracking scores — hold every
rank's rows, gathered to rank 0, which alone writes them.

Every rank needs at least one item, though: Lightning's evaluation loop runs none of its hooks on a rank without a
batch, so that rank would never join the reduction of the metrics (nor the gathering of rows) the others wait in. An
evaluation with fewer items than ranks is therefore refused (:class:`TooFewToShare`), saying how to run it in one
process, rather than left to hang or to end in Lightning's bare ``AssertionError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset, Sampler

__all__ = ["TooFewToShare", "evaluation_sampler", "gather_rows", "rank_share", "require_shareable", "world"]

T = TypeVar("T")


class TooFewToShare(ValueError):
    """An evaluation with fewer items than the processes sharing it; the message says how to run it in one."""


def world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 without an initialised process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def require_shareable(count: int, what: str, advice: str = "") -> None:
    """Refuse (:class:`TooFewToShare`) to share ``count`` items of ``what`` among more processes than there are items,
    saying ``advice`` or, without it, to run the same command in one process. Every rank decides alike, so all of them
    raise together and none is left waiting in a collective."""
    _, processes = world()
    if 0 < count < processes:
        raise TooFewToShare(
            f"{what} holds {count} item{'' if count == 1 else 's'} to evaluate, fewer than the {processes} processes "
            "sharing it (trainer.devices x trainer.num_nodes): each process must evaluate at least one, as Lightning "
            "runs no evaluation hook, and so no reduction of the metrics, on a process without a batch. "
            + (advice or "Evaluate it in one process: the same command with --trainer.devices 1 (a checkpoint "
               "trained on several devices evaluates on one)"))


def evaluation_sampler(dataset: Dataset, what: str) -> Sampler | None:
    """Under several processes, a sampler giving this rank items ``rank, rank + world, ...`` once each; else ``None``
    (the loader's own order). Lightning keeps a sampler that is already distributed instead of adding its own.
    ``what`` names the data in the refusal of a dataset smaller than the processes (:func:`require_shareable`)."""
    rank, processes = world()
    if processes == 1:
        return None
    require_shareable(len(dataset), what)
    return UnrepeatedDistributedSampler(dataset, num_replicas=processes, rank=rank, shuffle=False)


def rank_share(items: Sequence[T]) -> list[T]:
    """This rank's items of a list every rank holds in the same order: ``items[rank::world]``."""
    rank, processes = world()
    return list(items[rank::processes])


def gather_rows(rows: Sequence[T]) -> list[T]:
    """Every rank's ``rows``, concatenated in rank order, on every rank (this process's own rows alone)."""
    _, processes = world()
    if processes == 1:
        return list(rows)
    everyone: list[list[T] | None] = [None] * processes
    dist.all_gather_object(everyone, list(rows))
    return [row for part in everyone for row in (part or [])]

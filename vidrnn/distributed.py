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

What every process reads alike — a dataset's index, tracking sequences, cached runs, a checkpoint's split — is said
by global rank 0 alone (:func:`warn_once`, :func:`warnings_from_rank_zero`): Lightning's ``rank_zero_only.rank``,
taken from the launcher's environment (``RANK``, else ``LOCAL_RANK``) and set to the global rank when its strategy
starts, on the first node (``NODE_RANK`` 0); each process said it again, and Lightning's ``prepare_data`` once per
node. The commands that run in one
process refuse a launch as several (:func:`several_processes`), the refusal said once too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

import torch.distributed as dist
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import Dataset, Sampler

__all__ = ["RanksDisagree", "TooFewToShare", "evaluation_sampler", "gather_rows", "rank_share", "require_agreement",
           "require_shareable", "said_here", "say_once", "several_processes", "warn_once", "warnings_from_rank_zero",
           "world"]

T = TypeVar("T")


class TooFewToShare(ValueError):
    """An evaluation with fewer items than the processes sharing it; the message says how to run it in one."""


class RanksDisagree(ValueError):
    """Ranks of one run that listed different items to share; the message names what differs, on every rank."""


#: How many items only some ranks hold a refusal names, per list.
_EXAMPLES = 3


def world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 without an initialised process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def require_shareable(count: int, what: str, advice: str = "", processes: int | None = None) -> None:
    """Refuse (:class:`TooFewToShare`) to share ``count`` items of ``what`` among more processes than there are items,
    saying ``advice`` or, without it, to run the same command in one process. Every rank decides alike, so all of them
    raise together and none is left waiting in a collective. ``processes``: how many will share them, where no
    process group is there yet to say it (before Lightning launches them: its ``trainer.world_size``)."""
    if processes is None:
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


def require_agreement(lists: Mapping[str, Sequence[str]], cause: str) -> None:
    """Under a process group, refuse (:class:`RanksDisagree`, on every rank) unless every rank holds the same ``lists``
    (by name, each item's text in order), which the ranks are about to shard: a rank sharding another list counts
    items twice and leaves others out without a word. Digests are compared first; only when they differ are the lists
    themselves gathered, to name the differences and ``cause``, what likely made them."""
    _, processes = world()
    if processes == 1:
        return
    digests = _everyones({name: _digest(items) for name, items in lists.items()})
    if all(digest == digests[0] for digest in digests):
        return
    everyone = _everyones({name: list(items) for name, items in lists.items()})
    raise RanksDisagree(f"the {processes} processes of this run listed different items to share "
                        f"({_differences(everyone)}). {cause}")


def _digest(items: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(items)).encode()).hexdigest()


def _everyones(value: T) -> list[T]:
    """``value`` of every rank, in rank order (a collective: every rank must call it)."""
    everyone: list[T | None] = [None] * world()[1]
    dist.all_gather_object(everyone, value)
    return everyone  # type: ignore[return-value]


def _differences(everyone: Sequence[Mapping[str, Sequence[str]]]) -> str:
    """What differs between the ranks' lists, each list named: counts per rank and a few items only some ranks hold
    (or, with the same items, their order)."""
    names = sorted({name for lists in everyone for name in lists})
    said = [f"{name}: {_list_difference([lists.get(name, []) for lists in everyone])}" for name in names
            if any(list(lists.get(name, [])) != list(everyone[0].get(name, [])) for lists in everyone)]
    return "; ".join(said)


def _list_difference(per_rank: Sequence[Sequence[str]]) -> str:
    counts = ", ".join(f"{len(items)} on rank {rank}" for rank, items in enumerate(per_rank))
    holders: dict[str, list[int]] = {}
    for rank, items in enumerate(per_rank):
        for item in dict.fromkeys(items):
            holders.setdefault(item, []).append(rank)
    partial = [(item, ranks) for item, ranks in holders.items() if len(ranks) < len(per_rank)]
    if not partial:
        return f"{counts}, the same items in another order"
    examples = ", ".join(f"{item} (only on rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))})"
                         for item, ranks in partial[:_EXAMPLES])
    more = f" and {len(partial) - _EXAMPLES} more" if len(partial) > _EXAMPLES else ""
    return f"{counts}; {len(partial)} not on every rank, such as {examples}{more}"


def rank_share(items: Sequence[T]) -> list[T]:
    """This rank's items of a list every rank holds in the same order: ``items[rank::world]``."""
    rank, processes = world()
    return list(items[rank::processes])


def gather_rows(rows: Sequence[T]) -> list[T]:
    """Every rank's ``rows``, concatenated in rank order, on every rank (this process's own rows alone)."""
    if world()[1] == 1:
        return list(rows)
    return [row for part in _everyones(list(rows)) for row in part]


def said_here() -> bool:
    """Whether this process says what every process would say alike: global rank 0. Until a Trainer's strategy sets
    the global rank, a multi-node run started by hand gives each node's first process ``rank_zero_only.rank`` 0 (its
    launcher sets no ``RANK``); the node rank Lightning reads (``NODE_RANK``, else ``GROUP_RANK``) tells them apart."""
    return rank_zero_only.rank == 0 and LightningEnvironment().node_rank() == 0


def say_once(text: str) -> None:
    """Print ``text`` on stderr from global rank 0 alone (a refusal every process reaches alike)."""
    if said_here():
        print(text, file=sys.stderr)


def warn_once(logger: logging.Logger, message: str, *args: object) -> None:
    """Log a warning about what every process reads alike from global rank 0 alone; the record names the caller."""
    if said_here():
        logger.warning(message, *args, stacklevel=2)


@contextmanager
def warnings_from_rank_zero() -> Iterator[None]:
    """Python warnings raised within shown by global rank 0 alone, for code below that cannot know every process
    runs it alike (a video's implausible frame rate, said where a sequence's video is probed)."""
    if said_here():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def several_processes(command: str, consequence: str) -> str | None:
    """Why ``command``, which runs in one process, refuses a launch as several (torchrun's ``WORLD_SIZE`` above 1):
    ``consequence`` says what each process would do; ``None`` when launched as one."""
    processes = os.environ.get("WORLD_SIZE", "1")
    if not processes.isdigit() or int(processes) <= 1:
        return None
    return (f"launched as {processes} processes (WORLD_SIZE={processes}), but {command} runs in one: {consequence}. "
            "Run it without torchrun")

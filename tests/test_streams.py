"""Random streams of training datasets: one per process, from the seed, the loader worker and the DDP rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch.distributed as dist

from vidrnn.data.streams import WorkerRandom


def _draws(random: WorkerRandom) -> list[int]:
    return random.generator().integers(0, 1 << 30, 4).tolist()


def test_the_main_process_draws_what_a_generator_from_the_seed_draws() -> None:
    assert _draws(WorkerRandom(7)) == np.random.default_rng(7).integers(0, 1 << 30, 4).tolist()


def test_each_ddp_rank_draws_a_stream_of_its_own_and_rank_0_the_single_process_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rank's data module has the same seed: without the rank, rank 1 would draw rank 0's offsets."""
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    draws = {}
    for rank in (0, 1, 2):
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        draws[rank] = _draws(WorkerRandom(7))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    single = WorkerRandom(7)
    assert single.rank == 0 and draws[0] == _draws(single)
    assert len({tuple(values) for values in draws.values()}) == 3

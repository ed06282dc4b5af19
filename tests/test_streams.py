"""Training draws from the seed, the epoch and the item: the same in any worker, on any rank and after a resume."""

from __future__ import annotations

import numpy as np
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import DataLoader, Dataset

from vidrnn.data.streams import OFFSETS, SHUFFLES, EpochKey, EpochSampler, draws, key_of


class _Draws(Dataset):
    """Each item: its key and a number drawn for it."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, item: EpochKey) -> tuple[int, int, int]:
        return item.epoch, item.index, int(draws(7, OFFSETS, item).integers(1 << 30))


def _epochs(num_workers: int, epochs: int = 2) -> list[list[tuple[int, int, int]]]:
    sampler = EpochSampler(12, seed=7, shuffle=True)
    loader = DataLoader(_Draws(), batch_size=3, sampler=sampler, num_workers=num_workers, collate_fn=list,
                        persistent_workers=num_workers > 0)
    visits = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # as Lightning does before every training epoch
        visits.append([visit for batch in loader for visit in batch])
    return visits


def test_draws_and_order_do_not_depend_on_the_number_of_loader_workers() -> None:
    alone = _epochs(num_workers=0)
    assert _epochs(num_workers=2) == alone  # a worker copying a generator would repeat its neighbour's draws
    for epoch, visits in enumerate(alone):
        assert sorted(index for _, index, _ in visits) == list(range(12)) and {e for e, _, _ in visits} == {epoch}
        assert len({drawn for _, _, drawn in visits}) == 12
    assert [i for _, i, _ in alone[0]] != [i for _, i, _ in alone[1]]  # another order every epoch
    assert {d for *_, d in alone[0]}.isdisjoint({d for *_, d in alone[1]})  # and other draws


def test_a_run_resumed_at_an_epoch_draws_what_the_uninterrupted_run_drew() -> None:
    uninterrupted = _epochs(num_workers=0, epochs=3)
    resumed = EpochSampler(12, seed=7, shuffle=True)  # a new process: nothing carried over but the epoch
    resumed.set_epoch(2)
    assert [_Draws()[key] for key in resumed] == uninterrupted[2]


def test_ddp_ranks_share_one_epochs_keys_between_them() -> None:
    """Lightning wraps a custom sampler so that each rank takes a share; the epoch reaches the sampler inside."""
    shares = []
    for rank in (0, 1):
        wrapper = DistributedSamplerWrapper(EpochSampler(12, seed=7, shuffle=True), num_replicas=2, rank=rank,
                                            shuffle=False)
        wrapper.set_epoch(1)
        shares.append(list(wrapper))
    assert {key.epoch for share in shares for key in share} == {1}
    assert sorted(key.index for share in shares for key in share) == list(range(12))


def test_streams_of_one_visit_differ_and_a_plain_index_is_a_visit_in_epoch_0() -> None:
    visit = EpochKey(3, 5)
    assert draws(7, OFFSETS, visit).integers(1 << 30) != draws(7, SHUFFLES, visit).integers(1 << 30)
    assert key_of(5) == EpochKey(0, 5) and key_of(visit) is visit
    np.testing.assert_array_equal(draws(7, OFFSETS, visit).random(3), draws(7, OFFSETS, EpochKey(3, 5)).random(3))

from itertools import islice

import pytest
import torch
from torch.utils.data import DataLoader

from detseg.data.sampler import InfiniteSampler


def _take(sampler, n):
    return list(islice(iter(sampler), n))


def test_deterministic_and_each_epoch_is_a_permutation():
    a, b = _take(InfiniteSampler(7, seed=3), 21), _take(InfiniteSampler(7, seed=3), 21)
    assert a == b
    assert a != _take(InfiniteSampler(7, seed=4), 21)
    for epoch in range(3):
        chunk = a[epoch * 7:(epoch + 1) * 7]
        assert sorted(chunk) == list(range(7))
        assert chunk == torch.randperm(7, generator=torch.Generator().manual_seed(3 + epoch)).tolist()


def test_no_shuffle_is_sequential():
    assert _take(InfiniteSampler(3, shuffle=False), 7) == [0, 1, 2, 0, 1, 2, 0]


def test_rank_slices_interleave_to_the_single_process_stream():
    world = 3
    single = _take(InfiniteSampler(7, seed=1), 60)
    for rank in range(world):
        ranked = _take(InfiniteSampler(7, seed=1, rank=rank, world_size=world), 20)
        assert ranked == single[rank::world]


@pytest.mark.parametrize("start", [0, 5, 7, 9, 23, 1000])
def test_start_index_skips_exactly(start):
    full = _take(InfiniteSampler(7, seed=2), start + 30)
    assert _take(InfiniteSampler(7, seed=2, start_index=start), 30) == full[start:]


def test_start_index_with_ranks():
    world, start = 2, 12  # e.g. 3 steps of a global batch of 4
    full = _take(InfiniteSampler(5, seed=0), start + 40)
    for rank in range(world):
        resumed = _take(InfiniteSampler(5, seed=0, rank=rank, world_size=world, start_index=start), 20)
        assert resumed == full[start + rank::world]


def test_huge_start_index_jumps_to_its_epoch():
    """10**12 samples in: epoch 10**10, offset 7; reached by arithmetic (iterating would never end)."""
    start = 10**12 + 7
    expected = torch.randperm(100, generator=torch.Generator().manual_seed(10**10))[7:12].tolist()
    assert _take(InfiniteSampler(100, seed=0, start_index=start), 5) == expected


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        InfiniteSampler(0)
    with pytest.raises(ValueError):
        InfiniteSampler(5, rank=2, world_size=2)


def test_works_with_dataloader_batches():
    loader = DataLoader(list(range(10)), batch_size=4, sampler=InfiniteSampler(10, seed=0, start_index=8))
    batches = [b.tolist() for b in islice(loader, 3)]
    assert sum(batches, []) == _take(InfiniteSampler(10, seed=0), 20)[8:20]


def test_seeded_keys_follow_the_global_position_across_ranks_and_resume():
    plain = _take(InfiniteSampler(7, seed=5), 30)
    keys = _take(InfiniteSampler(7, seed=5, with_seeds=True), 30)
    assert [index for index, _ in keys] == plain
    assert len({seed for _, seed in keys}) == 30  # a fresh augmentation draw for every position
    resumed = _take(InfiniteSampler(7, seed=5, start_index=12, with_seeds=True), 18)
    assert resumed == keys[12:]
    ranked = [_take(InfiniteSampler(7, seed=5, rank=r, world_size=2, with_seeds=True), 15) for r in range(2)]
    assert [key for pair in zip(*ranked) for key in pair] == keys
    assert _take(InfiniteSampler(7, seed=6, with_seeds=True), 30) != keys

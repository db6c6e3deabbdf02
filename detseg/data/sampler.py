"""An endless, resumable, rank-sliced stream of dataset indices."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def sample_seed(seed: int, position: int) -> int:
    """The augmentation seed of the sample drawn at global ``position`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0])


class InfiniteSampler(Sampler):
    """Yields dataset indices forever.

    The global stream is the concatenation of per-epoch orders (epoch e shuffled with
    seed + e, so any epoch can be rebuilt without replaying the ones before it).
    Rank r takes global positions r, r + W, r + 2W, ...; with a per-rank batch size b
    the W ranks together consume one contiguous block of W*b positions per step.
    `start_index` is the number of global positions already consumed (iteration *
    global batch size), so a resumed run continues exactly where the last one stopped.

    With ``with_seeds`` it yields ``(index, sample_seed(seed, position))`` keys instead:
    datasets seed their random augmentation from the key, which makes every sample a pure
    function of its global position, whatever the number of DataLoader workers or restarts.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1, start_index: int = 0, with_seeds: bool = False):
        if size <= 0:
            raise ValueError(f"InfiniteSampler needs a non-empty dataset, got size={size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size, self.start_index = rank, world_size, start_index
        self.with_seeds = with_seeds

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.size)
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        position = self.start_index + self.rank
        while True:
            # Jump straight to the right epoch and offset: O(size) to skip, not O(start_index).
            epoch, offset = divmod(position, self.size)
            chunk = self._epoch_order(epoch)[offset::self.world_size].tolist()
            if self.with_seeds:
                steps = range(position, position + len(chunk) * self.world_size, self.world_size)
                yield from ((index, sample_seed(self.seed, p)) for index, p in zip(chunk, steps))
            else:
                yield from chunk
            position += len(chunk) * self.world_size

"""An endless, resumable, rank-sliced stream of dataset indices."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class InfiniteSampler(Sampler[int]):
    """Yields dataset indices forever.

    The global stream is the concatenation of per-epoch orders (epoch e shuffled with
    seed + e, so any epoch can be rebuilt without replaying the ones before it).
    Rank r takes global positions r, r + W, r + 2W, ...; with a per-rank batch size b
    the W ranks together consume one contiguous block of W*b positions per step.
    `start_index` is the number of global positions already consumed (iteration *
    global batch size), so a resumed run continues exactly where the last one stopped.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1, start_index: int = 0):
        if size <= 0:
            raise ValueError(f"InfiniteSampler needs a non-empty dataset, got size={size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size, self.start_index = rank, world_size, start_index

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.size)
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[int]:
        position = self.start_index + self.rank
        while True:
            # Jump straight to the right epoch and offset: O(size) to skip, not O(start_index).
            epoch, offset = divmod(position, self.size)
            chunk = self._epoch_order(epoch)[offset::self.world_size]
            yield from chunk.tolist()
            position += len(chunk) * self.world_size

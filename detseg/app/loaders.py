"""The loaders the app reads data through: an endless, resumable one to train on, an ordered one to evaluate."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from detseg.config import Config
from detseg.data.build import build_test_loader
from detseg.data.collate import collate
from detseg.data.sampler import InfiniteSampler
from detseg.utils.distributed import get_rank, get_world_size


def train_loader_factory(cfg: Config, dataset):
    """``start_index -> DataLoader`` over an endless, resumable, rank-sliced sampler."""
    world = get_world_size()
    if cfg.data.batch_size % world:
        raise ValueError(f"data.batch_size {cfg.data.batch_size} must divide by the {world} processes")

    def make(start_index: int) -> DataLoader:
        sampler = InfiniteSampler(len(dataset), cfg.train.seed, True, get_rank(), world, start_index,
                                  with_seeds=True)
        return DataLoader(
            dataset, batch_size=cfg.data.batch_size // world, sampler=sampler, collate_fn=collate,
            num_workers=cfg.data.num_workers, persistent_workers=cfg.data.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    return make


def eval_loader(cfg: Config, dataset) -> DataLoader:
    """In dataset order, this rank's share (``test.batch_size``; at most 2 workers: evaluation is short)."""
    return build_test_loader(dataset, cfg.test.batch_size, min(cfg.data.num_workers, 2))

"""A tiny detector stand-in, dataset and config for the engine tests."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from detseg.config import Config
from detseg.data.sampler import InfiniteSampler
from detseg.structures import Batch, Instances


class FakeClock:
    """Wall clock that only moves when told to (the model advances it per forward)."""

    def __init__(self, sec_per_forward: float = 0.0):
        self.now = 0.0
        self.sec_per_forward = sec_per_forward

    def __call__(self) -> float:
        return self.now


class DummyDetector(nn.Module):
    """Linear+BN+dropout on the flattened image, with noise from python `random` and numpy
    so that resume must restore every RNG stream to match a straight run."""

    def __init__(self, clock: FakeClock | None = None, nan_at: int | None = None):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3))
        self.cls = nn.Linear(8, 2)
        self.reg = nn.Linear(8, 4)
        self.clock, self.nan_at, self.forwards = clock, nan_at, 0

    def forward(self, batch: Batch, mode: str = "loss"):
        self.forwards += 1
        if self.clock is not None:
            self.clock.now += self.clock.sec_per_forward
        x = self.body(batch.images.flatten(1).float() / 255.0)
        if mode == "predict":
            return [Instances.empty() for _ in range(len(batch))]
        labels = torch.stack([lab[0] for lab in batch.labels])
        targets = torch.stack([b[0] for b in batch.boxes]) / 2.0
        noise = 1.0 + 0.01 * random.random() + 0.01 * float(np.random.rand())
        losses = {
            "loss_dummy_cls": nn.functional.cross_entropy(self.cls(x), labels) * noise,
            "loss_dummy_reg": nn.functional.smooth_l1_loss(self.reg(x), targets),
        }
        if self.nan_at is not None and self.forwards >= self.nan_at:
            losses["loss_dummy_reg"] = losses["loss_dummy_reg"] * float("nan")
        return losses


class TinyDataset(Dataset):
    """Sample i is a pure function of i: resume must get the same data from the index alone."""

    def __init__(self, size: int = 13):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(index)
        image = torch.randint(0, 256, (3, 2, 2), generator=g, dtype=torch.uint8)
        box = torch.rand(1, 4, generator=g) * 2
        return {"image": image, "id": index, "box": box, "label": torch.tensor([index % 2])}


def collate(samples: list[dict]) -> Batch:
    return Batch(
        images=torch.stack([s["image"] for s in samples]),
        image_sizes=[(2, 2)] * len(samples),
        orig_sizes=[(2, 2)] * len(samples),
        image_ids=[s["id"] for s in samples],
        boxes=[s["box"] for s in samples],
        labels=[s["label"] for s in samples],
        iscrowd=[torch.zeros(1, dtype=torch.bool) for _ in samples],
    )


def loader_factory(batch_size: int = 4, seed: int = 0, rank: int = 0, world_size: int = 1):
    dataset = TinyDataset()

    def factory(start_index: int):
        sampler = InfiniteSampler(len(dataset), seed=seed, rank=rank, world_size=world_size,
                                  start_index=start_index)
        return DataLoader(dataset, batch_size=batch_size // world_size, sampler=sampler, collate_fn=collate)

    return factory


def make_cfg(output_dir: Path, max_iters: int = 8, **sections) -> Config:
    """A CPU config; `sections` are {"solver": {...}, "train": {...}} overrides."""
    cfg = Config()
    cfg.data.batch_size = 4
    cfg.solver.lr, cfg.solver.warmup_iters, cfg.solver.steps = 0.1, 3, [6]
    cfg.train.max_iters, cfg.train.device, cfg.train.output_dir = max_iters, "cpu", str(output_dir)
    cfg.train.log_period, cfg.train.checkpoint_period = 2, 1000
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    return cfg


def make_model(seed: int = 0, **kwargs) -> DummyDetector:
    torch.manual_seed(seed)
    return DummyDetector(**kwargs)

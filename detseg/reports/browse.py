"""Ground truth as the model sees it: samples after the training pipeline's transforms, drawn.

The train split is read in the order and with the augmentation seeds of the first steps of a
single-process training run (the trainer's InfiniteSampler keys), so what is drawn is what the
model is fed; the val split is read in evaluation order with the evaluation resize.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from detseg.data.build import build_dataset
from detseg.data.sampler import InfiniteSampler
from detseg.models.build import trains_on_masks
from detseg.structures import Instances
from detseg.reports.visualization import draw_instances, draw_semantic


def build_browse_dataset(cfg, split: str):
    """The dataset the trainer builds for ``split`` (train: augmenting transforms, masks if trained on)."""
    if getattr(cfg.data, "task", "detection") == "classification":
        raise ValueError("data.task classification has no boxes or masks to draw; browse a detection or "
                         "semantic config")
    return build_dataset(cfg.data, split, train=split == "train", with_masks=trains_on_masks(cfg.model))


def browse_keys(dataset_len: int, split: str, seed: int, limit: int | None) -> list:
    """Dataset keys in the order training (train) or evaluation (val) reads them."""
    count = dataset_len if limit is None else min(limit, dataset_len)
    if split != "train":
        return list(range(count))
    sampler = InfiniteSampler(dataset_len, seed, shuffle=True, with_seeds=True)
    return list(itertools.islice(iter(sampler), count))


def draw_ground_truth(sample: dict, class_names: list[str]) -> np.ndarray:
    """RGB uint8 [H, W, 3] of a transformed sample: semantic map, masks, boxes and class names."""
    image = np.ascontiguousarray(sample["image"].permute(1, 2, 0).numpy())
    if "sem_seg" in sample:
        image = draw_semantic(image, sample["sem_seg"].numpy())
    labels = sample["labels"]
    instances = Instances(sample["boxes"], torch.ones(len(labels)), labels,
                          sample["masks"].bool() if "masks" in sample else None)
    captions = [_name(class_names, int(label)) + (" (crowd)" if crowd else "")
                for label, crowd in zip(labels.tolist(), sample["iscrowd"].tolist())]
    return draw_instances(image, instances, class_names, captions)


def _name(class_names: list[str], label: int) -> str:
    return class_names[label] if label < len(class_names) else str(label)

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from detseg.data.collate import collate
from detseg.data.datasets.coco import CocoDetection
from detseg.data.transforms import build_transforms
from detseg.structures import Batch


# pycocotools' mask decoding trips a numpy-2 DeprecationWarning inside its C extension: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _sample(h: int, w: int, n: int, image_id: int, **extra) -> dict:
    return {
        "image": torch.randint(1, 256, (3, h, w), dtype=torch.uint8),  # no zeros: padding is visible
        "image_id": image_id, "orig_size": (2 * h, 2 * w),
        "boxes": torch.rand(n, 4), "labels": torch.arange(n), "iscrowd": torch.zeros(n, dtype=torch.bool),
        **extra,
    }


def test_padding_and_sizes():
    samples = [_sample(10, 20, 2, 7), _sample(15, 12, 0, 9)]
    batch = collate(samples)
    assert isinstance(batch, Batch) and len(batch) == 2
    assert batch.images.shape == (2, 3, 15, 20) and batch.images.dtype == torch.uint8
    assert batch.image_sizes == [(10, 20), (15, 12)] and batch.orig_sizes == [(20, 40), (30, 24)]
    assert batch.image_ids == [7, 9]
    assert torch.equal(batch.images[0, :, :10, :20], samples[0]["image"])
    assert torch.equal(batch.images[1, :, :15, :12], samples[1]["image"])
    assert batch.images[0, :, 10:].eq(0).all() and batch.images[1, :, :, 12:].eq(0).all()
    assert batch.boxes[1].shape == (0, 4) and batch.labels[0].tolist() == [0, 1]
    assert batch.masks is None and batch.sem_seg is None and batch.proposals is None and batch.has_targets


def test_masks_sem_seg_proposals_are_padded():
    masks = [torch.ones(2, 10, 20, dtype=torch.uint8), torch.ones(0, 15, 12, dtype=torch.uint8)]
    sem = [torch.zeros(10, 20, dtype=torch.int64), torch.ones(15, 12, dtype=torch.int64)]
    samples = [_sample(10, 20, 2, 1, masks=masks[0], sem_seg=sem[0], proposals=torch.rand(5, 4)),
               _sample(15, 12, 0, 2, masks=masks[1], sem_seg=sem[1], proposals=torch.rand(3, 4))]
    batch = collate(samples)
    assert [m.shape for m in batch.masks] == [(2, 15, 20), (0, 15, 20)]
    assert batch.masks[0].sum() == 2 * 10 * 20
    assert batch.sem_seg.shape == (2, 15, 20) and batch.sem_seg[0, 10:].eq(255).all()
    assert batch.sem_seg[1, :, 12:].eq(255).all() and batch.sem_seg[1, :, :12].eq(1).all()
    assert [len(p) for p in batch.proposals] == [5, 3]


def test_inconsistent_samples_are_rejected():
    with pytest.raises(ValueError, match="masks"):
        collate([_sample(4, 4, 1, 1, masks=torch.zeros(1, 4, 4, dtype=torch.uint8)), _sample(4, 4, 1, 2)])
    with pytest.raises(ValueError):
        collate([])


def test_dataloader_yields_batches(shapes_paths):
    dataset = CocoDetection(shapes_paths["train_json"], shapes_paths["train_dir"], with_masks=True,
                            transforms=build_transforms(True, [96, 128], 200, with_masks=True))
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == 3
    for batch in batches:
        assert batch.images.shape[0] == 4 and max(batch.images.shape[-2:]) <= 200
        for (h, w), boxes, masks in zip(batch.image_sizes, batch.boxes, batch.masks):
            assert min(h, w) in (96, 128) or max(h, w) == 200
            assert masks.shape[1:] == batch.images.shape[-2:] and len(masks) == len(boxes)
            assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()

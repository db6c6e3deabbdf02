"""Ground truth of a batch as padded tensors, the form every batched matcher and loss reads."""
from __future__ import annotations

import torch
from torch import Tensor

from detseg.models.layers.matching import pad_boxes
from detseg.structures import Batch


def padded_targets(batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """(boxes [B, G, 4], valid [B, G], labels [B, G]); crowd boxes are left out, they are never targets."""
    keep = [~crowd for crowd in batch.iscrowd]
    boxes, valid = pad_boxes([b[k] for b, k in zip(batch.boxes, keep)])
    labels = torch.zeros(valid.shape, dtype=torch.int64, device=boxes.device)
    for i, (image_labels, k) in enumerate(zip(batch.labels, keep)):
        labels[i, : int(k.sum())] = image_labels[k]
    return boxes, valid, labels

"""Image classification: backbone -> global average pool of one map -> dropout -> linear.

Used to pre-train a backbone that a detector then starts from (``model.backbone.weights``
naming this model's checkpoint takes its ``backbone.*`` tensors). ``model(batch, mode)`` returns
- "loss":    ``{"loss_cls_ce": ...}`` against ``batch.class_labels``;
- "predict": float [B, K] class probabilities (softmax);
- "both":    ``(losses, probabilities)`` from one backbone pass.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detseg.models.meta_arch.base import Model
from detseg.structures import Batch


class Classifier(Model):
    task = "classification"

    def __init__(self, backbone: nn.Module, in_feature: str, num_classes: int, dropout: float,
                 pixel_mean, pixel_std, size_divisibility: int):
        super().__init__(pixel_mean, pixel_std, size_divisibility)
        self.backbone = backbone
        self.in_feature = in_feature
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.output_spec()[in_feature].channels, num_classes)

    def logits(self, batch: Batch) -> Tensor:
        images = self.preprocess(batch)
        features = self.backbone(images)[self.in_feature]
        return self.fc(self.dropout(mean_inside_images(features, batch.image_sizes, images.shape[-2:])))

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        return self._cross_entropy(self.logits(batch), batch)

    def predict(self, batch: Batch) -> Tensor:
        return self.logits(batch).softmax(dim=1)

    def loss_and_predict(self, batch: Batch) -> tuple[dict[str, Tensor], Tensor]:
        logits = self.logits(batch)
        return self._cross_entropy(logits, batch), logits.softmax(dim=1)

    @staticmethod
    def _cross_entropy(logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        if batch.class_labels is None:
            raise ValueError("a classifier needs class labels: set data.task=classification (data.format imagefolder)")
        return {"loss_cls_ce": F.cross_entropy(logits, batch.class_labels)}


def mean_inside_images(features: Tensor, image_sizes: list[tuple[int, int]], padded_hw) -> Tensor:
    """Global average pool over the cells that cover each image: the padding of a batch of mixed
    sizes is left out (with equal sizes and no padding this is the plain mean)."""
    fh, fw = features.shape[-2:]
    rows = torch.tensor([max(1, math.ceil(h * fh / padded_hw[0])) for h, _ in image_sizes], device=features.device)
    cols = torch.tensor([max(1, math.ceil(w * fw / padded_hw[1])) for _, w in image_sizes], device=features.device)
    inside = (torch.arange(fh, device=features.device)[None, :, None] < rows[:, None, None]) & \
             (torch.arange(fw, device=features.device)[None, None, :] < cols[:, None, None])
    inside = inside[:, None].to(features.dtype)
    return (features * inside).sum(dim=(2, 3)) / inside.sum(dim=(2, 3))

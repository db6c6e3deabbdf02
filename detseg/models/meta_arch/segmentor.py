"""Semantic segmentation: backbone -> head (-> aux head while training) -> per-pixel classes.

``model(batch, mode)`` returns
- "loss":    ``{"loss_fcn_ce": ..., "loss_aux_ce": ...}`` (aux only when the model has one);
- "predict": ``list[Tensor]``, per image an int64 [h, w] label map at the image's original size
             (batch.orig_sizes), 0 = background, c + 1 = class c;
- "both":    ``(losses, predictions)`` from one backbone pass.
"""
from __future__ import annotations

from torch import Tensor, nn

from detseg.models.meta_arch.base import Detector
from detseg.structures import Batch


class Segmentor(Detector):
    task = "semantic"

    def __init__(self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None,
                 pixel_mean, pixel_std, size_divisibility: int):
        super().__init__(pixel_mean, pixel_std, size_divisibility)
        self.backbone = backbone
        self.head = head
        self.aux_head = aux_head

    def _features(self, batch: Batch) -> tuple[dict[str, Tensor], tuple[int, int]]:
        images = self.preprocess(batch)
        return self.backbone(images), tuple(images.shape[-2:])

    def _losses(self, features: dict[str, Tensor], hw, batch: Batch, logits: Tensor) -> dict[str, Tensor]:
        losses = self.head.loss(logits, batch)
        if self.aux_head is not None:  # torchvision's recipe: the aux classifier only adds a loss
            losses.update(self.aux_head.loss(self.aux_head(features, hw), batch))
        return losses

    def forward_loss(self, batch: Batch) -> dict[str, Tensor]:
        features, hw = self._features(batch)
        return self._losses(features, hw, batch, self.head(features, hw))

    def forward_predict(self, batch: Batch) -> list[Tensor]:
        features, hw = self._features(batch)
        return self.head.predict(self.head(features, hw), batch)

    def forward_both(self, batch: Batch) -> tuple[dict[str, Tensor], list[Tensor]]:
        features, hw = self._features(batch)
        logits = self.head(features, hw)
        return self._losses(features, hw, batch, logits), self.head.predict(logits, batch)

"""Semantic segmentation: backbone -> head (-> aux head while training) -> per-pixel classes.

``model(batch, mode)`` returns
- "loss":    ``{"loss_fcn_ce": ..., "loss_aux_ce": ...}`` (aux only when the model has one);
- "predict": ``list[Tensor]``, per image an int64 [h, w] label map at the image's original size
             (batch.orig_sizes), 0 = background, c + 1 = class c;
- "both":    ``(losses, predictions)`` from one backbone pass.
The head's logits cover the padded network input; ``to_original`` crops, resizes and labels them.
"""
from __future__ import annotations

from torch import Tensor, nn

from detseg.models.layers.postprocess import label_map_to_original
from detseg.models.meta_arch.base import Model
from detseg.structures import Batch


class Segmentor(Model):
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

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        features, hw = self._features(batch)
        return self._losses(features, hw, batch, self.head(features, hw))

    def predict(self, batch: Batch) -> Tensor:
        """Logits [B, C, Hp, Wp] over the padded network input."""
        features, hw = self._features(batch)
        return self.head(features, hw)

    def loss_and_predict(self, batch: Batch) -> tuple[dict[str, Tensor], Tensor]:
        features, hw = self._features(batch)
        logits = self.head(features, hw)
        return self._losses(features, hw, batch, logits), logits

    def to_original(self, logits: Tensor, batch: Batch) -> list[Tensor]:
        return [label_map_to_original(image_logits, input_hw, orig_hw)
                for image_logits, input_hw, orig_hw in zip(logits, batch.image_sizes, batch.orig_sizes)]

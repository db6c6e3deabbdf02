"""Two-stage detectors: backbone -> optional neck -> proposal generator -> RoI heads.

Faster R-CNN is this class with an RPN and RoIAlign; Fast R-CNN swaps in
precomputed proposals and RoIPool; nothing else changes. Any proposal generator answers
``proposal_generator(features, batch, with_loss) -> (boxes per image, losses)``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from detseg.models.meta_arch.base import Detector
from detseg.models.roi.poolers import scale_key
from detseg.structures import Batch, Instances


class TwoStageDetector(Detector):
    def __init__(self, backbone: nn.Module, neck: nn.Module | None, proposal_generator: nn.Module,
                 roi_heads: nn.Module, pixel_mean, pixel_std, size_divisibility: int, mask_threshold: float = 0.5):
        super().__init__(pixel_mean, pixel_std, size_divisibility)
        self.backbone = backbone
        self.neck = neck
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.has_masks = getattr(roi_heads, "mask_head", None) is not None
        self.mask_threshold = mask_threshold

    def features(self, batch: Batch) -> dict[str, Tensor]:
        return self.features_of(self.preprocess(batch))

    def features_of(self, images: Tensor) -> dict[str, Tensor]:
        """Backbone (+ neck) on normalised, padded images."""
        features = self.backbone(images)
        return self.neck(features) if self.neck is not None else features

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        features = self.features(batch)
        proposals, losses = self.proposal_generator(features, batch, with_loss=True)
        return {**losses, **self.roi_heads.loss(features, proposals, batch)}

    def predict(self, batch: Batch) -> list[Instances]:
        scales = getattr(self.roi_heads.pooler, "test_scales", None)
        features = self.multi_scale_features(batch, scales) if scales else self.features(batch)
        proposals, _ = self.proposal_generator(features, batch, with_loss=False)
        return self.roi_heads.predict(features, proposals, batch.image_sizes)

    def multi_scale_features(self, batch: Batch, scales: list[float]) -> dict[str, Tensor]:
        """SPPnet's multi-scale test: backbone (+ neck) on the image resized by each factor, maps keyed
        ``name@i`` (see detseg.models.roi.poolers.scale_key); the pooler picks one scale per RoI."""
        images = self.preprocess(batch)
        merged = {}
        for i, factor in enumerate(scales):
            resized = images if factor == 1 else F.interpolate(images, scale_factor=factor, mode="bilinear",
                                                                 align_corners=False)
            features = self.features_of(resized)
            merged.update({scale_key(name, i): value for name, value in features.items()})
        return merged

    def loss_and_predict(self, batch: Batch) -> tuple[dict[str, Tensor], list[Instances]]:
        """Validation loss and predictions from one backbone pass (called in eval mode)."""
        if getattr(self.roi_heads.pooler, "test_scales", None):
            # multi-scale test predicts from other features than the loss uses: two passes
            return self.loss(batch), self.predict(batch)
        features = self.features(batch)
        proposals, losses = self.proposal_generator(features, batch, with_loss=True)
        losses.update(self.roi_heads.loss(features, proposals, batch))
        return losses, self.roi_heads.predict(features, proposals, batch.image_sizes)

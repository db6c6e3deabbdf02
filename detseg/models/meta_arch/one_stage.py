"""One-stage detectors: backbone -> optional neck -> one dense head (YOLO, SSD).

The head gets the padded input size with the features: its grid cells and default boxes are
laid over the network input, not over each image.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detseg.models.meta_arch.base import Detector
from detseg.structures import Batch, Instances


class OneStageDetector(Detector):
    def __init__(self, backbone: nn.Module, neck: nn.Module | None, head: nn.Module, pixel_mean, pixel_std,
                 size_divisibility: int):
        super().__init__(pixel_mean, pixel_std, size_divisibility)
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def raw_outputs(self, batch: Batch) -> dict[str, Tensor]:
        images = self.preprocess(batch)
        features = self.backbone(images)
        if self.neck is not None:
            features = self.neck(features)
        raw = self.head(features, tuple(images.shape[-2:]))
        # full precision for losses and decoding when autocast ran the convolutions in half precision
        return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in raw.items()}

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        return self.head.loss(self.raw_outputs(batch), batch)

    def predict(self, batch: Batch) -> list[Instances]:
        return self.head.predict(self.raw_outputs(batch), batch.image_sizes)

    def loss_and_predict(self, batch: Batch) -> tuple[dict[str, Tensor], list[Instances]]:
        raw = self.raw_outputs(batch)
        return self.head.loss(raw, batch), self.head.predict(raw, batch.image_sizes)

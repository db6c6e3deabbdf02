"""What every model shares: normalisation, padding, the explicit-mode call and the one mapping of
predictions back to the original image.

Subclasses implement ``loss(batch)``, ``predict(batch)`` and ``loss_and_predict(batch)`` (one backbone
pass), predicting in the network input's pixels; ``model(batch, mode)`` hands every prediction to
``to_original`` once, so callers always get them in the original image (``batch.orig_sizes``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detseg.models.layers.postprocess import instances_to_original
from detseg.structures import Batch, Instances

MODES = ("loss", "predict", "both")


class Model(nn.Module):
    """Base of every model: ``model(batch, mode)`` with mode "loss", "predict" or "both"."""

    def __init__(self, pixel_mean: list[float], pixel_std: list[float], size_divisibility: int):
        super().__init__()
        # kept on the 0..1 scale (computed in float64) so inputs equal torchvision's bit for bit
        mean = torch.tensor(pixel_mean, dtype=torch.float64) / 255
        std = torch.tensor(pixel_std, dtype=torch.float64) / 255
        self.register_buffer("pixel_mean", mean.float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", std.float().view(1, 3, 1, 1), persistent=False)
        self.size_divisibility = size_divisibility

    def forward(self, batch: Batch, mode: str = "predict"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got '{mode}'")
        if mode == "loss":
            return self.loss(batch)
        if mode == "predict":
            return self.to_original(self.predict(batch), batch)
        losses, predictions = self.loss_and_predict(batch)
        return losses, self.to_original(predictions, batch)

    def to_original(self, predictions, batch: Batch):
        """Network-input predictions -> the original image's; image-level outputs pass unchanged."""
        return predictions

    def preprocess(self, batch: Batch) -> Tensor:
        """uint8 padded batch -> normalised float, zero outside each image, padded to the divisibility."""
        images = (batch.images.float() / 255 - self.pixel_mean) / self.pixel_std
        heights = torch.tensor([s[0] for s in batch.image_sizes], device=images.device)
        widths = torch.tensor([s[1] for s in batch.image_sizes], device=images.device)
        rows = torch.arange(images.shape[-2], device=images.device)[None, :, None] < heights[:, None, None]
        cols = torch.arange(images.shape[-1], device=images.device)[None, None, :] < widths[:, None, None]
        images = images * (rows & cols)[:, None].to(images.dtype)
        div = self.size_divisibility
        pad_h = (-images.shape[-2]) % div if div > 1 else 0
        pad_w = (-images.shape[-1]) % div if div > 1 else 0
        return F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images


class Detector(Model):
    """A model that predicts Instances per image: boxes scaled, masks (if any) pasted into the original."""

    # Instances.masks filled by predict (evaluated as COCO "segm"); training needs Batch.masks
    has_masks = False
    mask_threshold = 0.5  # pasted mask probabilities at or above it are foreground

    def to_original(self, predictions: list[Instances], batch: Batch) -> list[Instances]:
        return [instances_to_original(instances, input_hw, orig_hw, self.mask_threshold)
                for instances, input_hw, orig_hw in zip(predictions, batch.image_sizes, batch.orig_sizes)]

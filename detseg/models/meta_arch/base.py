"""What every detector shares: normalisation, padding and the explicit-mode call."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detseg.structures import Batch

MODES = ("loss", "predict", "both")


class Detector(nn.Module):
    """Subclasses implement ``loss(batch)`` and ``predict(batch)``; ``both`` shares one backbone pass."""

    # Instances.masks filled by predict (evaluated as COCO "segm"); training needs Batch.masks
    has_masks = False

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
        return getattr(self, f"forward_{mode}")(batch)

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

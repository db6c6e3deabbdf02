"""R-CNN (Girshick et al. 2014): crop each proposal with context, warp it, run the backbone on it.

It is the two-stage model with a different "pooler": instead of pooling a shared feature map, the
``WarpPooler`` cuts every region out of the normalised *image*, warps it to a fixed size and runs the
model's backbone on it (in chunks), then global-average-pools the chosen feature into a vector. The RoI
head (sampling, softmax over C + 1 classes, class-specific box regression, per-class NMS) is the same
object Fast R-CNN uses. Left out: the paper's per-class linear SVMs with hard negative mining (the
softmax scores are used, as the paper's own fine-tuned-softmax ablation did).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from detseg.models.meta_arch.two_stage import TwoStageDetector
from detseg.models.proposals.precomputed import PrecomputedProposals
from detseg.structures import Batch

IMAGE = "image"


def context_boxes(boxes: Tensor, warp_size: int, padding: int) -> Tensor:
    """Dilate xyxy boxes so that, warped to ``warp_size``, the box fills the middle and ``padding``
    warped pixels of context surround it (the paper's p = 16 at 227)."""
    if padding <= 0:
        return boxes
    inner = warp_size - 2 * padding
    if inner <= 0:
        raise ValueError(f"model.rcnn.context_padding {padding} leaves nothing of a {warp_size} px region")
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * (warp_size / inner)
    return torch.cat([centre - half, centre + half], dim=1)


def crop_and_warp(images: Tensor, boxes: list[Tensor], warp_size: int, padding: int = 0) -> Tensor:
    """[B, 3, H, W] + per-image xyxy boxes -> [R, 3, S, S] warped regions (bilinear; zero = the mean
    outside the image). ``aligned=True`` with adaptive sampling (ceil(box / S) samples per bin, an average
    that anti-aliases large boxes) makes a box [x, y, x + S, y + S] return exactly those pixels."""
    rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), context_boxes(b, warp_size, padding)], 1)
                      for i, b in enumerate(boxes)])
    return roi_align(images, rois, (warp_size, warp_size), spatial_scale=1.0, sampling_ratio=0, aligned=True)


class WarpPooler(nn.Module):
    """Regions -> backbone (per region, batched in chunks) -> global average pool of one feature.

    ``run_backbone`` is the model's backbone call (RegionCNN owns the module): the pooler registers no
    copy of its weights, and hooks or a compiled forward on the backbone apply here too.
    """

    def __init__(self, run_backbone: Callable[[Tensor], dict[str, Tensor]], feature: str, channels: int,
                 warp_size: int, padding: int, chunk_size: int):
        super().__init__()
        self.run_backbone, self.feature = run_backbone, feature
        self.warp_size, self.padding, self.chunk_size = warp_size, padding, max(1, chunk_size)
        self.flat_dim = channels

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        regions = crop_and_warp(features[IMAGE], boxes, self.warp_size, self.padding)
        if len(regions) == 0:
            return regions.new_zeros((0, self.flat_dim))
        out = [F.adaptive_avg_pool2d(self.run_backbone(chunk)[self.feature], 1).flatten(1)
               for chunk in regions.split(self.chunk_size)]
        return torch.cat(out)


class RegionCNN(TwoStageDetector):
    """No shared feature map: ``features`` is the normalised image; the RoI head's pooler runs the backbone
    on each warped region."""

    def __init__(self, backbone: nn.Module, roi_heads: nn.Module, pixel_mean, pixel_std):
        super().__init__(backbone, None, PrecomputedProposals(), roi_heads, pixel_mean, pixel_std, 1)

    def features(self, batch: Batch) -> dict[str, Tensor]:
        return {IMAGE: self.preprocess(batch)}

"""R-CNN (Girshick et al. 2014): crop each proposal with context, warp it, run the backbone on it.

It is the two-stage model without a shared feature map: the model cuts every region out of the
normalised *image*, warps it to a fixed size and runs its backbone on it (in chunks), then
global-average-pools the chosen feature into a vector that the RoI head reads as pooled. The RoI
head (sampling, softmax over C + 1 classes, class-specific box regression, per-class NMS) is the same
object Fast R-CNN uses. Left out: the paper's per-class linear SVMs with hard negative mining (the
softmax scores are used, as the paper's own fine-tuned-softmax ablation did).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from detseg.models.meta_arch.two_stage import TwoStageDetector
from detseg.models.proposals.precomputed import PrecomputedProposals
from detseg.structures import Batch, Instances

REGIONS = "regions"  # the features key of the per-RoI vectors


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


class RegionVectors(nn.Module):
    """R-CNN's pooler: the model has already run the backbone on every RoI's warped region, and the RoI
    head reads those vectors, ``features[REGIONS]`` [R, C] in the RoIs' order, as pooled features."""

    def __init__(self, channels: int):
        super().__init__()
        self.flat_dim = channels

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        return features[REGIONS]


class RegionCNN(TwoStageDetector):
    """No shared feature map: the model cuts each RoI out of the normalised image, warps it and runs its
    backbone on it (``chunk_size`` regions per pass), then hands the pooled ``feature`` vectors to the RoI
    head, whose pooler is a RegionVectors."""

    def __init__(self, backbone: nn.Module, roi_heads: nn.Module, pixel_mean, pixel_std, *, feature: str,
                 warp_size: int, context_padding: int, chunk_size: int):
        super().__init__(backbone, None, PrecomputedProposals(), roi_heads, pixel_mean, pixel_std, 1)
        self.feature, self.warp_size, self.context_padding = feature, warp_size, context_padding
        self.chunk_size = max(1, chunk_size)
        self.region_channels = backbone.output_spec()[feature].channels

    def region_features(self, images: Tensor, boxes: list[Tensor]) -> dict[str, Tensor]:
        """Normalised images + per-image boxes -> ``{REGIONS: [R, C]}``, the backbone's pooled feature per box."""
        regions = crop_and_warp(images, boxes, self.warp_size, self.context_padding)
        if len(regions) == 0:
            return {REGIONS: regions.new_zeros((0, self.region_channels))}
        out = [F.adaptive_avg_pool2d(self.backbone(chunk)[self.feature], 1).flatten(1)
               for chunk in regions.split(self.chunk_size)]
        return {REGIONS: torch.cat(out)}

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        proposals, _ = self.proposal_generator({}, batch, with_loss=True)
        rois, classes, targets, _ = self.roi_heads.sample(proposals, batch)
        features = self.region_features(self.preprocess(batch), rois)
        return self.roi_heads.box_loss(features, rois, classes, targets, batch)

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Instances]:
        proposals, _ = self.proposal_generator({}, batch, with_loss=False)
        features = self.region_features(self.preprocess(batch), proposals)
        return self.roi_heads.predict(features, proposals, batch.image_sizes)

    def loss_and_predict(self, batch: Batch) -> tuple[dict[str, Tensor], list[Instances]]:
        """The loss's regions are the sampled RoIs, the predictions' all proposals: two backbone passes."""
        return self.loss(batch), self.predict(batch)

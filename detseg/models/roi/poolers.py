"""RoI poolers: features + per-image boxes -> fixed-size region features [R, C, P, P] (SPP: [R, C * bins]).

The box head never knows which one it got; each is a thin adapter over torchvision.ops.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign, roi_pool

from detseg.models.backbones.base import FeatureSpec


class RoIAlignPooler(nn.Module):
    """RoIAlign on one map, or FPN's level assignment (k0 = 4, canonical 224) over several."""

    def __init__(self, in_features: list[str], resolution: int, sampling_ratio: int):
        super().__init__()
        self.op = MultiScaleRoIAlign(in_features, resolution, sampling_ratio)

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        return self.op(features, boxes, image_sizes)


class RoIPoolPooler(nn.Module):
    """Fast R-CNN's max-pooling RoIPool on a single feature map."""

    def __init__(self, in_feature: str, stride: int, resolution: int):
        super().__init__()
        self.in_feature, self.scale, self.resolution = in_feature, 1.0 / stride, resolution

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        return roi_pool(features[self.in_feature], boxes, self.resolution, self.scale)


class SPPPooler(nn.Module):
    """SPPnet's spatial pyramid (He et al. 2014): max-pool each RoI into l x l bins per level, concatenate.

    Each level is ``torchvision.ops.roi_pool`` at output size l; the result is [R, C * sum(l * l)],
    level by level in the configured order, each level flattened channel-major.
    """

    def __init__(self, in_feature: str, stride: int, levels: list[int], channels: int):
        super().__init__()
        if not levels or any(int(l) < 1 for l in levels):
            raise ValueError(f"model.roi.spp_levels must be positive grid sizes, got {levels}")
        self.in_feature, self.scale, self.levels = in_feature, 1.0 / stride, [int(l) for l in levels]
        self.num_bins = sum(l * l for l in self.levels)
        self.flat_dim = channels * self.num_bins

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        feature = features[self.in_feature]
        return torch.cat([roi_pool(feature, boxes, l, self.scale).flatten(1) for l in self.levels], dim=1)


def build_pooler(cfg, in_spec: dict[str, FeatureSpec]) -> nn.Module:
    """cfg: ``model.roi``."""
    if cfg.pooler == "roi_align":
        return RoIAlignPooler(list(cfg.in_features), cfg.pooler_resolution, cfg.sampling_ratio)
    if cfg.pooler == "roi_pool":
        if len(cfg.in_features) != 1:
            raise ValueError("model.roi.pooler 'roi_pool' reads one feature map; set model.roi.in_features to one")
        name = cfg.in_features[0]
        return RoIPoolPooler(name, in_spec[name].stride, cfg.pooler_resolution)
    if cfg.pooler == "spp":
        if len(cfg.in_features) != 1:
            raise ValueError("model.roi.pooler 'spp' reads one feature map; set model.roi.in_features to one")
        name = cfg.in_features[0]
        return SPPPooler(name, in_spec[name].stride, cfg.spp_levels, in_spec[name].channels)
    raise ValueError(f"model.roi.pooler must be 'roi_align', 'roi_pool' or 'spp', got '{cfg.pooler}'")

"""RoI poolers: features + per-image boxes -> fixed-size region features [R, C, P, P] (SPP: [R, C * bins]).

The box head never knows which one it got; each is a thin adapter over torchvision.ops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import LevelMapper

from detseg.models.layers.call_context import capturing_graph
from detseg.models.roi.roi_align_levels import roi_align_levels
from detseg.models.roi.threaded_roi_ops import as_rois, threaded_roi_pool


class RoIAlignPooler(nn.Module):
    """RoIAlign on one map, or FPN's level assignment (k0 = 4, canonical 224) over several.

    torchvision's rules (its MultiScaleRoIAlign and LevelMapper); on the CPU the RoIAlign kernels run over
    the threads (roi_align_levels), elsewhere and when traced for export torchvision's module runs as is.
    """

    def __init__(self, in_features: list[str], strides: list[int], resolution: int, sampling_ratio: int):
        super().__init__()
        self.op = MultiScaleRoIAlign(in_features, resolution, sampling_ratio)
        self.in_features, self.resolution, self.sampling_ratio = list(in_features), resolution, sampling_ratio
        self.scales = [1.0 / s for s in strides]
        levels = [round(math.log2(s)) for s in strides]
        self.mapper = LevelMapper(levels[0], levels[-1])

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        maps = [features[k] for k in self.in_features]
        if maps[0].device.type != "cpu" or capturing_graph():
            return self.op(features, boxes, image_sizes)
        levels = self.mapper(boxes) if len(maps) > 1 else None
        return roi_align_levels(maps, as_rois(boxes), levels, self.scales, self.resolution, self.sampling_ratio)


class RoIPoolPooler(nn.Module):
    """Fast R-CNN's max-pooling RoIPool on a single feature map (threaded on the CPU: threaded_roi_ops).

    RoIPool rounds every RoI edge to the map's grid. ``upsample`` > 1 resizes the map bilinearly by that
    factor first, so the rounding is that many times finer and the pooled values vary with the box's
    position inside a cell: tighter boxes on small objects, for a larger map to pool.
    """

    def __init__(self, in_feature: str, stride: int, resolution: int, upsample: int = 1):
        super().__init__()
        self.in_feature, self.scale, self.resolution = in_feature, 1.0 / stride, resolution
        self.upsample = upsample

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        feature, scale = features[self.in_feature], self.scale
        if self.upsample > 1:
            feature = F.interpolate(feature, scale_factor=self.upsample, mode="bilinear", align_corners=False)
            scale = scale * self.upsample
        return threaded_roi_pool(feature, boxes, self.resolution, scale)


class SPPPooler(nn.Module):
    """SPPnet's spatial pyramid (He et al. 2014): max-pool each RoI into l x l bins per level, concatenate.

    Each level is ``torchvision.ops.roi_pool`` at output size l; the result is [R, C * sum(l * l)],
    level by level in the configured order, each level flattened channel-major.
    """

    def __init__(self, in_feature: str, stride: int, levels: list[int], channels: int,
                 test_scales: list[float] = (), canonical_size: float = 224.0):
        super().__init__()
        if not levels or any(int(l) < 1 for l in levels):
            raise ValueError(f"model.roi.spp_levels must be positive grid sizes, got {levels}")
        if any(s <= 0 for s in test_scales):
            raise ValueError(f"model.roi.spp_test_scales must be positive factors, got {list(test_scales)}")
        self.in_feature, self.scale, self.levels = in_feature, 1.0 / stride, [int(l) for l in levels]
        self.num_bins = sum(l * l for l in self.levels)
        self.flat_dim = channels * self.num_bins
        self.test_scales, self.canonical_size = [float(s) for s in test_scales], float(canonical_size)

    def forward(self, features: dict[str, Tensor], boxes: list[Tensor], image_sizes) -> Tensor:
        if scale_key(self.in_feature, 0) in features:
            return self._multi_scale(features, boxes)
        return self._pool(features[self.in_feature], boxes)

    def _pool(self, feature: Tensor, rois) -> Tensor:
        rois = as_rois(rois)
        return torch.cat([threaded_roi_pool(feature, rois, l, self.scale).flatten(1) for l in self.levels], dim=1)

    def _multi_scale(self, features: dict[str, Tensor], boxes: list[Tensor]) -> Tensor:
        """Each RoI pooled from the one scale where its side (sqrt of area) is closest to the canonical size."""
        rois = as_rois(boxes)
        side = ((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])).clamp(min=0).sqrt()
        scales = rois.new_tensor(self.test_scales)
        best = (side[:, None] * scales[None, :] - self.canonical_size).abs().argmin(dim=1)
        out = rois.new_zeros((len(rois), self.flat_dim))
        for i, factor in enumerate(self.test_scales):
            chosen = best == i
            if chosen.any():
                scaled = torch.cat([rois[chosen, :1], rois[chosen, 1:] * factor], 1)
                out[chosen] = self._pool(features[scale_key(self.in_feature, i)], scaled)
        return out


def scale_key(name: str, index: int) -> str:
    """Feature dict key of map ``name`` computed at the ``index``-th multi-scale test factor."""
    return f"{name}@{index}"


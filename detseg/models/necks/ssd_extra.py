"""SSD's neck: L2Norm on the finest backbone map and extra layers that keep halving the coarsest one."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from detseg.models.layers.features import FeatureSpec, stride_key
from detseg.models.layers.init import init_ssd_convs


class L2Norm(nn.Module):
    """Unit L2 norm across channels times a learned per-channel scale (ParseNet).

    conv4_3's activations are much larger than the deeper maps'; SSD normalises them so one
    learning rate suits every predictor.
    """

    def __init__(self, channels: int, init_scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(init_scale)))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight.view(1, -1, 1, 1) * F.normalize(x, dim=1)


def vgg_extra_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """1x1 reduction to half the output width, then a 3x3 conv: padded when it halves, valid when stride 1."""
    mid = out_channels // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out_channels, kernel_size=3, stride=stride, padding=1 if stride > 1 else 0),
        nn.ReLU(inplace=True),
    )


def lite_extra_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """SSDlite: 1x1 reduction, depthwise 3x3, 1x1 expansion; each with BN and ReLU6."""
    mid = out_channels // 2
    norm = _lite_norm
    return nn.Sequential(
        Conv2dNormActivation(in_channels, mid, kernel_size=1, norm_layer=norm, activation_layer=nn.ReLU6),
        Conv2dNormActivation(mid, mid, kernel_size=3, stride=stride, groups=mid, norm_layer=norm,
                             activation_layer=nn.ReLU6),
        Conv2dNormActivation(mid, out_channels, kernel_size=1, norm_layer=norm, activation_layer=nn.ReLU6),
    )


def _lite_norm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.03)


EXTRA_BLOCKS = {"vgg": vgg_extra_block, "lite": lite_extra_block}  # model.neck.extra_style


class SSDExtraLayers(nn.Module):
    """Passes the inputs through (the finest L2-normalised when asked) and appends one map per extra
    layer, each keyed by twice the previous stride (s32, s64, ...): the nominal stride, the maps of
    SSD300 being 10, 5, 3 and 1 cells wide."""

    def __init__(self, in_spec: dict[str, FeatureSpec], in_features: list[str], *,
                 block: Callable[[int, int, int], nn.Module], xavier_init: bool, l2norm_scale: float | None,
                 extra_channels: list[int], extra_strides: list[int]):
        """``block(in_channels, out_channels, stride)`` makes each extra layer (EXTRA_BLOCKS); ``xavier_init``:
        Caffe SSD's initialisation, else SSDlite's N(0, 0.03); ``l2norm_scale`` None: no L2Norm."""
        super().__init__()
        if len(extra_channels) != len(extra_strides):
            raise ValueError("model.neck.extra_channels and model.neck.extra_strides need one entry per extra layer")
        self.in_features = sorted(in_features, key=lambda k: in_spec[k].stride)
        finest = in_spec[self.in_features[0]]
        self.l2norm = L2Norm(finest.channels, l2norm_scale) if l2norm_scale is not None else None
        self._spec = {k: in_spec[k] for k in self.in_features}
        channels, stride = in_spec[self.in_features[-1]].channels, in_spec[self.in_features[-1]].stride
        blocks = []
        for out_channels, block_stride in zip(extra_channels, extra_strides):
            blocks.append(block(channels, out_channels, block_stride))
            channels, stride = out_channels, stride * 2
            self._spec[stride_key(stride)] = FeatureSpec(channels, stride)
        self.extras = nn.ModuleList(blocks)
        init_ssd_convs(self.extras, plain=xavier_init)

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {k: features[k] for k in self.in_features}
        if self.l2norm is not None:
            out[self.in_features[0]] = self.l2norm(out[self.in_features[0]])
        x = features[self.in_features[-1]]
        extra_keys = list(self._spec)[len(self.in_features):]
        for key, block in zip(extra_keys, self.extras):
            x = block(x)
            out[key] = x
        return out

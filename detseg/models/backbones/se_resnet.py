"""SE-ResNet-50 and SE-ResNeXt-50 (32x4d): torchvision's ResNet bottleneck with a squeeze-and-excitation gate.

torchvision has no SENet, so the block is torchvision's ``Bottleneck`` plus ``torchvision.ops.
SqueezeExcitation`` (global average pool, 1x1 conv C -> C/16, ReLU, 1x1 conv C/16 -> C, sigmoid) scaling
the residual branch after ``bn3``, before the shortcut is added (Hu et al. 2018). Own block rather than
timm's ``seresnet50``: it needs no optional dependency and keeps everything ResNetBackbone offers
(``width``, ``norm``, ``dilation``, ``compute_only``). The layout and key names are timm's, so timm's
seresnet50 / seresnext50_32x4d state dicts load as ``model.backbone.weights`` files and the parameter
counts equal timm's without the classifier (``timm/seresnet50`` builds timm's own network instead).
Each gate adds 2 * C^2 / 16 weights and C / 16 + C biases.
"""
from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F
import torchvision
from torch import Tensor
from torchvision.models.resnet import Bottleneck
from torchvision.ops import SqueezeExcitation

from detseg.models.backbones.base import load_local_weights, refuse_scaled_weights
from detseg.models.backbones.folded_norm import conv_norm
from detseg.models.backbones.resnet import ResNetBackbone, scaled_resnet

SE_REDUCTION = 16  # r in the paper
SE_RESNETS = {"se_resnet50": dict(groups=1, width_per_group=64),
              "se_resnext50_32x4d": dict(groups=32, width_per_group=4)}
_LAYERS = [3, 4, 6, 3]


class SEBottleneck(Bottleneck):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        channels = self.conv3.out_channels
        self.se = SqueezeExcitation(channels, max(1, channels // SE_REDUCTION))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(conv_norm(x, self.conv1, self.bn1), inplace=True)
        out = F.relu(conv_norm(out, self.conv2, self.bn2), inplace=True)
        out = self.se(conv_norm(out, self.conv3, self.bn3))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity, inplace=True)


class SEResNetBackbone(ResNetBackbone):
    """ResNetBackbone's stages and outputs (``s4``..``s32``) on SE bottlenecks."""

    def _make_net(self, name, weights, norm_layer, width, dilation) -> torchvision.models.ResNet:
        if weights is not None and not Path(weights).is_file():
            raise ValueError(f"model.backbone.weights '{weights}' is not a file: torchvision has no {name} "
                             f"weights; give a state dict file (timm's {_timm_name(name)} weights fit), or "
                             f"use model.backbone.name timm/{_timm_name(name)}")
        refuse_scaled_weights(width, weights)
        layout = SE_RESNETS[name]
        if width == 1.0:
            net = torchvision.models.ResNet(SEBottleneck, _LAYERS, norm_layer=norm_layer,
                                            replace_stride_with_dilation=dilation, **layout)
        else:
            net = scaled_resnet(SEBottleneck, _LAYERS, width, norm_layer, dilation, **layout)
        if weights is not None:
            load_local_weights(net, Path(weights))
        return net


def _timm_name(name: str) -> str:
    return name.replace("se_resnet", "seresnet").replace("se_resnext", "seresnext")

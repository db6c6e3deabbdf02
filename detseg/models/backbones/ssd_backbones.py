"""The two backbones SSD is published with, laid out so torchvision's SSD weights convert by renaming.

- ``vgg16_ssd``: VGG-16 "reduced" as in Liu et al. 2016: pool3 rounds up (75 -> 38 at SSD300), pool5 is
  3x3 stride 1 and fc6/fc7 become a dilated 3x3 and a 1x1 convolution. Outputs ``s8`` (conv4_3) and
  ``s16`` (fc7).
- ``mobilenet_v3_large_ssdlite``: MobileNetV3-Large tapped as SSDLite (Howard et al. 2019): ``s16`` is the
  expansion layer of the first stride-32 block, ``s32`` the last layer.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detseg.models.backbones.base import (
    Backbone, freeze_modules, load_local_weights, resolve_weights, torchvision_model,
)
from detseg.models.layers.features import FeatureSpec


class VGG16SSDBackbone(Backbone):
    def __init__(self, name: str = "vgg16", weights=None, freeze_at: int = 0, norm: str = "bn", width: float = 1.0):
        super().__init__()
        if width != 1.0:
            raise ValueError("model.backbone.width must be 1.0 for vgg16_ssd")
        enum, local = resolve_weights(name, weights)
        net = torchvision_model("vgg16", enum)
        if local is not None:
            load_local_weights(net, local)
        pools = [i for i, layer in enumerate(net.features) if isinstance(layer, nn.MaxPool2d)]
        net.features[pools[2]].ceil_mode = True
        self.features = net.features[: pools[4]]  # through conv5_3 + ReLU, torchvision's indices
        self.fc = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),  # pool5 keeps the stride at 16
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),  # fc6
            nn.ReLU(inplace=True),
            nn.Conv2d(1024, 1024, kernel_size=1),  # fc7
            nn.ReLU(inplace=True),
        )
        for layer in self.fc:
            if isinstance(layer, nn.Conv2d):  # fc6/fc7 never come from ImageNet weights here
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self._conv4_end = pools[3]
        bounds = [0, pools[0] + 1, pools[1] + 1, pools[2] + 1, pools[3] + 1]
        freeze_modules([self.features[bounds[i] : bounds[i + 1]] for i in range(min(freeze_at, 4))])

    def output_spec(self) -> dict[str, FeatureSpec]:
        return {"s8": FeatureSpec(512, 8), "s16": FeatureSpec(1024, 16)}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        conv4_3 = self.features[: self._conv4_end](images)
        fc7 = self.fc(self.features[self._conv4_end :](conv4_3))
        return {"s8": conv4_3, "s16": fc7}


class MobileNetV3SSDLiteBackbone(Backbone):
    """torchvision builds SSDlite's MobileNetV3 with a halved tail (``reduced_tail``) when it starts
    without ImageNet weights, which is how its COCO model was trained; ImageNet weights need the full tail."""

    def __init__(self, name="mobilenet_v3_large", weights=None, norm="bn", freeze_at=0, width=1.0):
        super().__init__()
        if norm != "bn":
            raise ValueError("mobilenet_v3_large_ssdlite supports model.backbone.norm 'bn' only")
        enum, local = resolve_weights(name, weights)
        norm_layer = lambda c: nn.BatchNorm2d(c, eps=0.001, momentum=0.03)  # noqa: E731  torchvision's SSDlite BN
        net = torchvision_model("mobilenet_v3_large", enum, width_mult=width, norm_layer=norm_layer,
                                                    reduced_tail=weights is None)
        if weights is None:
            _normal_init(net)
        if local is not None:
            load_local_weights(net, local)
        self.features = net.features
        # the first block that halves the map to stride 32; its expansion layer is still at stride 16
        self._c4 = max(i for i, block in enumerate(self.features) if getattr(block, "_is_cn", False))
        expansion = self.features[self._c4].block[0]
        self._spec = {"s16": FeatureSpec(expansion.out_channels, 16),
                      "s32": FeatureSpec(self.features[-1].out_channels, 32)}
        freeze_modules(list(self.features)[:freeze_at])

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        c4_block = self.features[self._c4]
        s16 = c4_block.block[0](self.features[: self._c4](images))
        s32 = self.features[self._c4 + 1 :](c4_block.block[1:](s16))
        return {"s16": s16, "s32": s32}


def _normal_init(module: nn.Module) -> None:
    """SSDlite's initialisation when training from scratch."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            torch.nn.init.normal_(layer.weight, mean=0.0, std=0.03)
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)

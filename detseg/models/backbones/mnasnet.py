"""MNASNet 0.5 / 1.0 on torchvision's definition: the last layer at strides 8, 16 and 32.

torchvision's ``layers``: 0-7 the stem (stride 2), 8 the stride-4 stack, 9 stride 8, 10-11 stride 16,
12-13 stride 32, then the 1x1 conv to 1280 channels with its BN and ReLU (14-16), which ``s32`` includes
as MobileNetV3's does. ``width`` multiplies torchvision's ``alpha`` (mnasnet1_0 at 0.5 is mnasnet0_5).
"""
from __future__ import annotations

import torchvision
from torch import nn

from detseg.models.backbones.base import apply_norm_choice, torchvision_or_scaled
from detseg.models.backbones.chain import ChainBackbone

ALPHAS = {"mnasnet0_5": 0.5, "mnasnet1_0": 1.0}
BN_MOMENTUM = 0.1  # PyTorch's default, as every other backbone here trains with


class MNASNetBackbone(ChainBackbone):
    def __init__(self, name="mnasnet1_0", weights=None, norm="bn", freeze_at=0, width=1.0):
        super().__init__()
        net = torchvision_or_scaled(name, weights, width, lambda: torchvision.models.MNASNet(ALPHAS[name] * width))
        self.layers = apply_norm_choice(net.layers, norm, name)
        for module in self.layers.modules():
            if isinstance(module, nn.BatchNorm2d):
                # torchvision keeps TensorFlow's momentum (0.0003) for its long ImageNet schedule: in a detector
                # trained for minutes or hours the running statistics would stay near their initial values and
                # evaluation would see unnormalised maps (0.0 AP after 500 iterations on shapes)
                module.momentum = BN_MOMENTUM
        stem = [f"layers.{i}" for i in range(9)]
        stages = [["layers.9"], ["layers.10", "layers.11"], [f"layers.{i}" for i in range(12, 17)]]
        self.set_chain(stem, stages, freeze_at)

"""MNASNet 0.5 / 1.0 on torchvision's definition: the last layer at strides 8, 16 and 32.

torchvision's ``layers``: 0-7 the stem (stride 2), 8 the stride-4 stack, 9 stride 8, 10-11 stride 16,
12-13 stride 32, then the 1x1 conv to 1280 channels with its BN and ReLU (14-16), which ``s32`` includes
as MobileNetV3's does. ``width`` multiplies torchvision's ``alpha`` (mnasnet1_0 at 0.5 is mnasnet0_5).
"""
from __future__ import annotations

import torchvision

from detseg.models.backbones.base import apply_norm_choice, torchvision_or_scaled
from detseg.models.backbones.chain import ChainBackbone

ALPHAS = {"mnasnet0_5": 0.5, "mnasnet1_0": 1.0}


class MNASNetBackbone(ChainBackbone):
    def __init__(self, name="mnasnet1_0", weights=None, norm="bn", freeze_at=0, width=1.0):
        super().__init__()
        net = torchvision_or_scaled(name, weights, width, lambda: torchvision.models.MNASNet(ALPHAS[name] * width))
        self.layers = apply_norm_choice(net.layers, norm, name)
        stem = [f"layers.{i}" for i in range(9)]
        stages = [["layers.9"], ["layers.10", "layers.11"], [f"layers.{i}" for i in range(12, 17)]]
        self.set_chain(stem, stages, freeze_at)

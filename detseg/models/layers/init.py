"""Weight initialisation shared by necks and heads."""
from __future__ import annotations

from torch import nn


def init_ssd_convs(module: nn.Module, plain: bool) -> None:
    """Xavier for plain SSD layers (Caffe SSD), N(0, 0.03) for SSDlite's (torchvision's recipe); zero bias."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            if plain:
                nn.init.xavier_uniform_(layer.weight)
            else:
                nn.init.normal_(layer.weight, std=0.03)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

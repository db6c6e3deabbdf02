"""U-Net's expanding path (Ronneberger et al. 2015) on any backbone of the contract.

The contracting path is the backbone. From its deepest map, each decoder step upsamples with a learned
transposed convolution (U-Net's "up-convolution", also halving channels), concatenates the backbone map
of the same stride (the skip that carries the fine detail), and runs two 3x3 conv + BN + ReLU. A 1x1
score and a last transposed convolution (bilinear-initialised, like FCN's) reach the input resolution.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detseg.models.layers.features import FeatureSpec
from detseg.models.seg.fcn import LearnedUpsample, _fit
from detseg.models.seg.sem_seg import semantic_loss
from detseg.structures import Batch


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """U-Net's two 3x3 convolutions, padded (the paper's are unpadded, which needs cropping), with BN."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNetHead(nn.Module):
    """Decoder over ``in_features`` (deepest first); ``channels[i]`` is the width after step i."""

    def __init__(self, spec: dict[str, FeatureSpec], in_features: list[str], channels: list[int], num_classes: int):
        super().__init__()
        self.in_features = list(in_features)
        strides = [spec[name].stride for name in self.in_features]
        if any(deep <= shallow or deep % shallow for deep, shallow in zip(strides, strides[1:])):
            raise ValueError(f"model.unet.in_features {self.in_features} must go from the deepest map to the "
                             f"shallowest, each stride a multiple of the next; their strides are {strides}")
        if len(channels) != len(self.in_features) - 1:
            raise ValueError(f"model.unet.channels needs one width per decoder step: {len(self.in_features) - 1} "
                             f"for in_features {self.in_features}, got {list(channels)}")
        widths = [spec[self.in_features[0]].channels, *channels]
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i + 1], strides[i] // strides[i + 1],
                                                    stride=strides[i] // strides[i + 1])
                                 for i in range(len(channels)))
        self.blocks = nn.ModuleList(conv_block(widths[i + 1] + spec[name].channels, widths[i + 1])
                                    for i, name in enumerate(self.in_features[1:]))
        self.score = nn.Conv2d(widths[-1], num_classes + 1, 1)
        finest = strides[-1]
        self.final_up = LearnedUpsample(num_classes + 1, finest) if finest > 1 else nn.Identity()

    def forward(self, features: dict[str, Tensor], out_hw: tuple[int, int]) -> Tensor:
        x = features[self.in_features[0]]
        for name, up, block in zip(self.in_features[1:], self.ups, self.blocks):
            skip = features[name]
            x = block(torch.cat([_fit(up(x), skip.shape[-2:]), skip], dim=1))
        return _fit(self.final_up(self.score(x)), out_hw)

    def loss(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        return semantic_loss(logits, batch, "unet")

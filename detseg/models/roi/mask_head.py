"""Mask R-CNN's mask branch (He et al. 2017): 3x3 convs on RoIAlign features, a 2x transposed conv,
and one M x M mask logit map per class (index 0 = background, like the box predictor)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from detseg.models.roi.box_head import conv_stack


class MaskHead(nn.Module):
    def __init__(self, in_channels: int, conv_dims: list[int], num_classes: int):
        super().__init__()
        self.convs, channels = conv_stack(in_channels, conv_dims)
        self.upsample = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.logits = nn.Conv2d(channels, num_classes + 1, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, pooled: Tensor) -> Tensor:
        """[R, C, P, P] -> mask logits [R, K + 1, 2P, 2P]."""
        # in place: the transposed conv keeps no use of its output, and a new 100 x 256 x 28 x 28 map cost
        # more in page faults than the ReLU itself
        return self.logits(F.relu(self.upsample(self.convs(pooled)), inplace=True))

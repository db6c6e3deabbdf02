"""Box head (optional convs, then fully connected layers) and the class/box predictor."""
from __future__ import annotations

from torch import Tensor, nn


def conv_stack(in_channels: int, dims: list[int]) -> tuple[nn.Sequential, int]:
    """3x3 conv + ReLU per entry of ``dims`` (RoI box and mask heads); returns it and its out channels."""
    layers, channels = [], in_channels
    for dim in dims:
        layers += [nn.Conv2d(channels, dim, 3, padding=1), nn.ReLU(inplace=True)]
        channels = dim
    return nn.Sequential(*layers), channels


class BoxHead(nn.Module):
    def __init__(self, in_channels: int, resolution: int, conv_dims: list[int], fc_dims: list[int]):
        super().__init__()
        self.convs, channels = conv_stack(in_channels, conv_dims)
        sizes = [channels * resolution * resolution, *fc_dims]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out_dim = sizes[-1]

    def forward(self, pooled: Tensor) -> Tensor:
        x = self.convs(pooled).flatten(1)
        for fc in self.fcs:
            x = nn.functional.relu(fc(x))
        return x


class BoxPredictor(nn.Module):
    """Scores over K + 1 classes (index 0 = background) and class-specific box deltas."""

    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(in_dim, (num_classes + 1) * 4)
        # small initial outputs keep the first steps of training from scratch stable (as detectron2)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)

"""LeNet-5 (LeCun et al. 1998) for the classification task, in the layer arithmetic courses teach.

32 x 32 grey input: C1 6@5x5 (28 x 28), S2 2x2 average subsampling (14), C3 16@5x5 (10), S4 (5), C5
120@5x5 (1 x 1), F6 84, tanh after every layer with weights. C3 connects to all six S2 maps (the
paper's sparse connection table is left out) and S2/S4 are parameter-free averages, so the layers hold
156, 2,416, 48,120 and 10,164 parameters; the classifier's 84 -> 10 output layer adds 850. F6 is a 1x1
convolution, so the one output, ``s4``, is C5's grid (1 x 1 at 32 pixels; larger inputs slide the
network with a jump of 4 pixels). RGB images are averaged to grey, as the digits LeNet read.
"""
from __future__ import annotations

from torch import Tensor, nn

from detseg.models.backbones.base import Backbone, freeze_modules, load_local_weights, require_full_width
from detseg.models.layers.features import FeatureSpec

INPUT_SIZE = 32


class LeNet5Backbone(Backbone):
    def __init__(self, name="lenet5", weights=None, norm="bn", freeze_at=0, width=1.0):
        super().__init__()
        require_full_width(width, name)
        if norm == "gn":
            raise ValueError("model.backbone.norm 'gn' is not available for lenet5 (it has no norm layers)")
        self.c1, self.s2 = nn.Conv2d(1, 6, 5), nn.AvgPool2d(2)
        self.c3, self.s4 = nn.Conv2d(6, 16, 5), nn.AvgPool2d(2)
        self.c5, self.f6 = nn.Conv2d(16, 120, 5), nn.Conv2d(120, 84, 1)
        self.act = nn.Tanh()
        if weights is not None:
            load_local_weights(self, _local_file(weights))
        freeze_modules([self.c1, self.c3, self.c5, self.f6][:freeze_at])

    def output_spec(self) -> dict[str, FeatureSpec]:
        return {"s4": FeatureSpec(84, 4)}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = images.mean(dim=1, keepdim=True)
        x = self.s2(self.act(self.c1(x)))
        x = self.s4(self.act(self.c3(x)))
        return {"s4": self.act(self.f6(self.act(self.c5(x))))}


def _local_file(weights: str):
    from pathlib import Path

    if not Path(weights).is_file():
        raise ValueError(f"model.backbone.weights '{weights}' is not a file: lenet5 has no published weights")
    return Path(weights)

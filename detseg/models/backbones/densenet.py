"""DenseNet-121/161/169/201 on torchvision's definitions: one map per dense block, after its BN-ReLU.

A dense block of l layers with growth rate k turns k0 input channels into k0 + l * k; each transition
halves channels and stride. ``s4``..``s32`` are the four blocks' outputs, each after the BatchNorm and
ReLU that torchvision applies next (a transition's norm/relu, or norm5 and the final ReLU for the last
block), so every map is normalised as the classifier's input is. ``width`` scales the growth rate and
the stem's channels (CPU-sized networks; weights exist only at 1.0).
"""
from __future__ import annotations

import torchvision
from torch import nn

from detseg.models.backbones.base import apply_norm_choice, torchvision_or_scaled
from detseg.models.backbones.chain import ChainBackbone

# name: (growth rate k, layers per block, stem channels k0), as torchvision's builders
DENSENETS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}


class DenseNetBackbone(ChainBackbone):
    def __init__(self, name="densenet121", weights=None, norm="bn", freeze_at=0, width=1.0):
        super().__init__()
        growth, blocks, stem = DENSENETS[name]
        net = torchvision_or_scaled(name, weights, width, lambda: torchvision.models.DenseNet(
            max(1, round(growth * width)), blocks, max(8, round(stem * width))))
        self.features = apply_norm_choice(net.features, norm, name)
        self.relu5 = nn.ReLU(inplace=True)  # torchvision's F.relu after norm5
        self.set_chain(_paths("features.", ["conv0", "norm0", "relu0", "pool0"]), _stages(), freeze_at)


def _paths(prefix: str, names: list[str]) -> list[str]:
    return [prefix + name for name in names]


def _stages() -> list[list[str]]:
    stages = [_paths("features.", ["denseblock1", "transition1.norm", "transition1.relu"])]
    for i in (2, 3):
        stages.append(_paths("features.", [f"transition{i - 1}.conv", f"transition{i - 1}.pool", f"denseblock{i}",
                                           f"transition{i}.norm", f"transition{i}.relu"]))
    stages.append([*_paths("features.", ["transition3.conv", "transition3.pool", "denseblock4", "norm5"]), "relu5"])
    return stages

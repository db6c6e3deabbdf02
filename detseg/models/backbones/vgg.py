"""VGG-16 as in Faster R-CNN / SPPnet: conv5_3 at stride 16; pool5 (stride 32) for FCN's fc6."""
from __future__ import annotations

from torch import Tensor, nn

from detseg.models.backbones.base import (
    Backbone, freeze_batch_norm, freeze_modules, load_local_weights, resolve_weights, torchvision_model,
)
from detseg.models.layers.features import FeatureSpec


class VGGBackbone(Backbone):
    """Outputs ``s4`` (conv3_3), ``s8`` (conv4_3) and ``s16`` (conv5_3), each after its ReLU,
    and ``s32``: pool5 of conv5_3, which FCN's convolutionalised fc6 reads (no parameters)."""

    def __init__(self, name: str = "vgg16", weights=None, freeze_at: int = 0, norm: str = "bn", width: float = 1.0):
        super().__init__()
        if width != 1.0:
            raise ValueError("model.backbone.width must be 1.0 for VGG (torchvision has no scaled VGG)")
        enum, local = resolve_weights(name, weights)
        net = torchvision_model(name, enum)
        if local is not None:
            load_local_weights(net, local)
        pools = [i for i, layer in enumerate(net.features) if isinstance(layer, nn.MaxPool2d)]
        # blocks split right before pools 2, 3, 4 so each output is the block's last ReLU
        bounds = [0, pools[1] + 1, pools[2], pools[3], pools[4]]
        self.features = net.features[: pools[4]]  # keep torchvision's indices for its state dicts
        if norm == "frozen_bn":
            freeze_batch_norm(self.features)
        self._cuts = {"s4": pools[2], "s8": pools[3], "s16": pools[4]}
        channels = _out_channels(net.features)
        self._spec = {key: FeatureSpec(channels[cut - 1], int(key[1:])) for key, cut in self._cuts.items()}
        self.pool5 = net.features[pools[4]]
        self._spec["s32"] = FeatureSpec(self._spec["s16"].channels, 32)
        stages = [self.features[bounds[i] : bounds[i + 1]] for i in range(4)]
        freeze_modules(stages[:freeze_at])

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        out, x, start = {}, images, 0
        for key, cut in self._cuts.items():
            x = self.features[start:cut](x)
            out[key], start = x, cut
        out["s32"] = self.pool5(x)
        return out


def _out_channels(features: nn.Sequential) -> list[int]:
    """Channels after each layer index, carried through non-conv layers."""
    channels, current = [], 3
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            current = layer.out_channels
        channels.append(current)
    return channels

"""AlexNet (torchvision's single-GPU variant): conv5 at stride 16 and its pool at stride 32."""
from __future__ import annotations

from torch import Tensor

from detseg.models.backbones.base import (
    Backbone, freeze_first_convs, load_local_weights, resolve_weights, torchvision_model,
)
from detseg.models.layers.features import FeatureSpec


class AlexNetBackbone(Backbone):
    def __init__(self, name="alexnet", weights=None, freeze_at=0, norm="bn", width=1.0):
        super().__init__()
        enum, local = resolve_weights(name, weights)
        net = torchvision_model("alexnet", enum)
        if local is not None:
            load_local_weights(net, local)
        self.features = net.features
        self._spec = {"s16": FeatureSpec(256, 16), "s32": FeatureSpec(256, 32)}
        freeze_first_convs(self.features, freeze_at)

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        s16 = self.features[:12](images)  # through conv5's ReLU
        return {"s16": s16, "s32": self.features[12](s16)}

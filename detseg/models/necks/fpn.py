"""FPN on torchvision.ops.FeaturePyramidNetwork, speaking the stride-keyed contract."""
from __future__ import annotations

from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from detseg.models.layers.features import FeatureSpec, stride_key


class FPN(nn.Module):
    """Top-down pyramid over the given strides; ``extra_pool`` adds a max-pooled coarsest level."""

    def __init__(self, in_spec: dict[str, FeatureSpec], in_features: list[str], out_channels: int, extra_pool: bool):
        super().__init__()
        self.in_features = sorted(in_features, key=lambda k: in_spec[k].stride)
        self.fpn = FeaturePyramidNetwork(
            [in_spec[k].channels for k in self.in_features],
            out_channels,
            extra_blocks=LastLevelMaxPool() if extra_pool else None,
        )
        self._spec = {k: FeatureSpec(out_channels, in_spec[k].stride) for k in self.in_features}
        if extra_pool:
            coarsest = in_spec[self.in_features[-1]].stride * 2
            self._spec[stride_key(coarsest)] = FeatureSpec(out_channels, coarsest)

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        outputs = self.fpn({k: features[k] for k in self.in_features})
        # torchvision names the extra level "pool"; give it its stride key
        return dict(zip(self._spec.keys(), outputs.values()))


"""MobileNetV3-Large on torchvision's definition; outputs at strides 8, 16 and 32."""
from __future__ import annotations

from torch import Tensor, nn

from detseg.models.backbones.base import (
    Backbone, freeze_modules, load_local_weights, norm_layer_factory, resolve_weights, torchvision_model,
)
from detseg.models.layers.features import FeatureSpec, stride_key


class MobileNetV3Backbone(Backbone):
    def __init__(self, name="mobilenet_v3_large", weights=None, norm="bn", freeze_at=0, width=1.0):
        super().__init__()
        if width != 1.0 and weights is not None:
            raise ValueError(f"model.backbone.weights needs model.backbone.width 1.0, got {width}: "
                             "weights exist for the full width, see configs/faster_rcnn/custom_pretrained.yaml")
        enum, local = resolve_weights(name, weights)
        net = torchvision_model(name, enum, width_mult=width, norm_layer=_bn_with_eps(norm))
        if local is not None:
            load_local_weights(net, local)
        self.features = net.features
        self._outputs = _last_layer_per_stride(self.features)
        self._spec = {stride_key(s): FeatureSpec(c, s) for s, (_, c) in self._outputs.items() if s >= 8}
        freeze_modules(list(self.features)[:freeze_at])

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        out, x = {}, images
        wanted = {index: stride_key(s) for s, (index, _) in self._outputs.items() if s >= 8}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def _bn_with_eps(norm: str):
    layer = norm_layer_factory(norm)
    if norm == "bn":  # torchvision's MobileNetV3 uses these BN settings; keep them for its weights
        return lambda c: nn.BatchNorm2d(c, eps=0.001, momentum=0.01)
    return layer


def _last_layer_per_stride(features: nn.Sequential) -> dict[int, tuple[int, int]]:
    """stride -> (index of the last layer at that stride, its channels), found by a dry shape walk."""
    import torch

    outputs, x = {}, torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        for index, layer in enumerate(features):
            was_training = layer.training
            layer.eval()
            x = layer(x)
            layer.train(was_training)
            outputs[64 // x.shape[-1]] = (index, x.shape[1])
    return outputs

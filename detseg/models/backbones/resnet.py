"""ResNet backbones on torchvision's definitions, plus width-scaled variants for CPU training."""
from __future__ import annotations

import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from detseg.models.backbones.base import (
    Backbone, freeze_modules, load_local_weights, norm_layer_factory, refuse_scaled_weights, resolve_weights,
    torchvision_model,
)
from detseg.models.layers.features import FeatureSpec, stride_key
from detseg.models.backbones.folded_norm import conv_norm, fold_norms_at_call

_DEPTHS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
}


class ResNetBackbone(Backbone):
    """Stem + four stages; ``s4..s32`` are the outputs of layer1..layer4.

    Attribute names follow torchvision's ResNet so its state dicts load unchanged.
    ``dilation`` (torchvision's replace_stride_with_dilation for layer2..4, Bottleneck depths only)
    keeps each stage's key but its spec reports the real stride: [False, True, True] gives
    s16 and s32 at stride 8, as in FCN/DeepLab.
    """

    def __init__(self, name: str, weights=None, norm="bn", freeze_at=0, width=1.0, dilation=None):
        super().__init__()
        dilation = list(dilation or [False, False, False])
        net = self._make_net(name, weights, norm_layer_factory(norm), width, dilation)
        fold_norms_at_call(net)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        strides = _real_strides(dilation)
        self._spec = {
            stride_key(4 * 2 ** i): FeatureSpec(_stage_channels(stage), strides[i])
            for i, stage in enumerate(self._stages())
        }
        self._num_stages = 4  # compute_only() may stop earlier
        freeze_modules([nn.ModuleList([self.conv1, self.bn1]), *self._stages()][:freeze_at])

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def _make_net(self, name, weights, norm_layer, width, dilation) -> torchvision.models.ResNet:
        """torchvision's ResNet of that name (its weights at width 1.0), or a width-scaled one."""
        block, layers = _DEPTHS[name]
        if any(dilation) and block is BasicBlock:
            raise ValueError(f"model.backbone.dilation needs a Bottleneck ResNet (resnet50/101), not {name}")
        if width == 1.0:
            enum, local = resolve_weights(name, weights)
            net = torchvision_model(name, enum, norm_layer=norm_layer, replace_stride_with_dilation=dilation)
            if local is not None:
                load_local_weights(net, local)
            return net
        refuse_scaled_weights(width, weights)
        return scaled_resnet(block, layers, width, norm_layer, dilation)

    def _stages(self) -> tuple[nn.Module, ...]:
        return self.layer1, self.layer2, self.layer3, self.layer4

    def compute_only(self, names: list[str]) -> None:
        keys = list(self._spec)
        if all(name in keys for name in names) and names:
            self._num_stages = 1 + max(keys.index(name) for name in names)
            # never run, so never given a gradient: DDP would wait for one without find_unused_parameters
            for stage in self._stages()[self._num_stages:]:
                stage.requires_grad_(False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = self.maxpool(self.relu(conv_norm(images, self.conv1, self.bn1)))
        features = {}
        for name, stage in zip(self._spec, self._stages()[: self._num_stages]):
            x = stage(x)
            features[name] = x
        return features


def _stage_channels(stage: nn.Sequential) -> int:
    last = stage[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def _real_strides(dilation: list[bool]) -> list[int]:
    """Output stride of layer1..layer4; a dilated stage keeps its input's stride."""
    strides = [4]
    for dilate in dilation:
        strides.append(strides[-1] if dilate else strides[-1] * 2)
    return strides


def scaled_resnet(block, layers, width, norm_layer, dilation=(False, False, False), groups=1, width_per_group=64):
    """torchvision's ResNet with every stage's width multiplied: 0.5 halves channels (~4x fewer FLOPs)."""
    net = torchvision.models.ResNet(block, layers, groups=groups, width_per_group=width_per_group,
                                    norm_layer=norm_layer)
    base = max(8, int(round(64 * width)))
    net.inplanes, net.dilation = base, 1
    net.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = norm_layer(base)
    net.layer1 = net._make_layer(block, base, layers[0])
    net.layer2 = net._make_layer(block, base * 2, layers[1], stride=2, dilate=dilation[0])
    net.layer3 = net._make_layer(block, base * 4, layers[2], stride=2, dilate=dilation[1])
    net.layer4 = net._make_layer(block, base * 8, layers[3], stride=2, dilate=dilation[2])
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return net

"""Dilated ResNet stages for FCN-ResNet50 (VGG-16's pool5 is in tests/models/test_backbones.py)."""
from __future__ import annotations

import pytest
import torch

from detseg.config.schema import BackboneConfig
from detseg.models.build import build_backbone


@pytest.mark.parametrize("width", [0.25, 1.0])
def test_dilated_resnet_keeps_keys_and_reports_real_strides(width):
    cfg = BackboneConfig(name="resnet50", width=width, dilation=[False, True, True])
    backbone = build_backbone(cfg).eval()
    spec = backbone.output_spec()
    assert {k: v.stride for k, v in spec.items()} == {"s4": 4, "s8": 8, "s16": 8, "s32": 8}
    with torch.no_grad():
        out = backbone(torch.rand(1, 3, 64, 96))
    for key, feat in out.items():
        assert feat.shape[1:] == (spec[key].channels, 64 // spec[key].stride, 96 // spec[key].stride), key
    assert backbone.layer4[0].conv2.dilation == (2, 2) and backbone.layer4[1].conv2.dilation == (4, 4)


def test_dilation_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="ResNets only"):
        build_backbone(BackboneConfig(name="vgg16", dilation=[False, False, True]))
    with pytest.raises(ValueError, match="Bottleneck"):
        build_backbone(BackboneConfig(name="resnet18", width=0.25, dilation=[False, False, True]))


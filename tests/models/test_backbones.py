"""Backbones and FPN: output_spec() tells the truth about the tensors, freezing, norms, registry errors."""
from __future__ import annotations

from functools import lru_cache
from unittest import mock

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detseg.config.schema import BackboneConfig, NeckConfig
from detseg.models.build import build_backbone, build_neck
from detseg.models.necks.fpn import FPN

SIZE = 64  # small on purpose: s32 maps are 2x2
# (name, width, freeze_at): one build per backbone, reused by the spec and freezing tests
CASES = [
    ("resnet18", 1.0, 2),
    ("resnet18", 0.25, 3),
    ("resnet50", 1.0, 1),
    ("vgg16", 1.0, 2),
    ("vgg16_bn", 1.0, 1),
    ("mobilenet_v3_large", 1.0, 2),
    ("alexnet", 1.0, 2),
]


@lru_cache(maxsize=None)
def _backbone(name: str, width: float, freeze_at: int = 0, norm: str = "bn"):
    torch.manual_seed(0)
    cfg = BackboneConfig(name=name, width=width, freeze_at=freeze_at, norm=norm)
    if not name.startswith(("vgg", "alexnet")):
        return build_backbone(cfg)
    # torchvision's VGG/AlexNet initialise their big fc classifiers (VGG: ~120M parameters, about
    # 2.5 s on CPU), which the backbones drop; skip only that: their convs never use these two inits
    with mock.patch.object(nn.Linear, "reset_parameters", lambda self: None), mock.patch.object(
        nn.init, "normal_", lambda tensor, *args, **kwargs: tensor
    ):
        return build_backbone(cfg)


@lru_cache(maxsize=None)
def _outputs(name: str, width: float, freeze_at: int, size: int = SIZE):
    bb = _backbone(name, width, freeze_at).eval()
    with torch.no_grad():
        return bb(torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name, width, freeze_at", CASES)
def test_output_spec_matches_tensors(name, width, freeze_at):
    spec = _backbone(name, width, freeze_at).output_spec()
    out = _outputs(name, width, freeze_at)
    assert set(out) == set(spec)
    for key, feat in out.items():
        assert key == f"s{spec[key].stride}"
        assert feat.shape[0] == 1
        assert feat.shape[1] == spec[key].channels, key
        expected = SIZE // spec[key].stride
        if name == "alexnet":
            # torchvision's AlexNet (11x11/4 conv, unpadded 3x3 pools) floors each size once more:
            # 64 px gives 3 and 1 where 4 and 2 would be exact (224 px: 13 and 6)
            assert feat.shape[-2:] == ((SIZE - 1) // spec[key].stride,) * 2, key
        else:
            assert feat.shape[-2:] == (expected, expected), key


def test_expected_specs_for_known_backbones():
    """Spot values, so a spec that is wrong together with its forward is still caught."""
    freeze = {(name, width): f for name, width, f in CASES}

    def simple(name, width=1.0):
        return {k: (v.channels, v.stride) for k, v in _backbone(name, width, freeze[name, width]).output_spec().items()}

    assert simple("resnet18") == {"s4": (64, 4), "s8": (128, 8), "s16": (256, 16), "s32": (512, 32)}
    assert simple("resnet18", 0.25) == {"s4": (16, 4), "s8": (32, 8), "s16": (64, 16), "s32": (128, 32)}
    assert simple("resnet50") == {"s4": (256, 4), "s8": (512, 8), "s16": (1024, 16), "s32": (2048, 32)}
    assert simple("vgg16") == {"s4": (256, 4), "s8": (512, 8), "s16": (512, 16), "s32": (512, 32)}
    assert simple("vgg16_bn") == {"s4": (256, 4), "s8": (512, 8), "s16": (512, 16), "s32": (512, 32)}
    assert simple("mobilenet_v3_large") == {"s8": (40, 8), "s16": (112, 16), "s32": (960, 32)}
    assert simple("alexnet") == {"s16": (256, 16), "s32": (256, 32)}


def test_non_square_input_keeps_strides():
    with torch.no_grad():
        out = _backbone("resnet18", 0.25, 3).eval()(torch.rand(1, 3, 128, 96))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {
        "s4": (32, 24), "s8": (16, 12), "s16": (8, 6), "s32": (4, 3)
    }


def _frozen(module: nn.Module) -> bool:
    params = list(module.parameters())
    assert params, module
    return all(not p.requires_grad for p in params)


def _trainable(module: nn.Module) -> bool:
    params = list(module.parameters())
    assert params, module
    return all(p.requires_grad for p in params)


@pytest.mark.parametrize("width, freeze_at", [(1.0, 2), (0.25, 3)])
def test_resnet_freeze_at(width, freeze_at):
    bb = _backbone("resnet18", width, freeze_at)
    stages = [nn.ModuleList([bb.conv1, bb.bn1]), bb.layer1, bb.layer2, bb.layer3, bb.layer4]
    for i, stage in enumerate(stages):
        assert (_frozen if i < freeze_at else _trainable)(stage), (i, freeze_at)


def test_resnet_freeze_at_zero_and_all():
    assert all(p.requires_grad for p in _backbone("resnet18", 0.25, 0).parameters())
    assert not any(p.requires_grad for p in _backbone("resnet18", 0.25, 5).parameters())


def test_resnet50_freeze_at_one_freezes_only_the_stem():
    bb = _backbone("resnet50", 1.0, 1)
    assert _frozen(bb.conv1) and _frozen(bb.bn1)
    assert _trainable(bb.layer1) and _trainable(bb.layer4)


def _conv_flags(features: nn.Sequential) -> list[bool]:
    return [layer.weight.requires_grad for layer in features if isinstance(layer, nn.Conv2d)]


def test_vgg_freeze_at():
    # VGG-16 has 13 convs: 2+2 before s4's block (the "stem"), 3 in conv3 (s4), 3 in conv4, 3 in conv5
    assert _conv_flags(_backbone("vgg16", 1.0, 2).features) == [False] * 7 + [True] * 6
    assert _conv_flags(_backbone("vgg16_bn", 1.0, 1).features) == [False] * 4 + [True] * 9
    bn = [m for m in _backbone("vgg16_bn", 1.0, 1).features if isinstance(m, nn.BatchNorm2d)]
    assert [m.weight.requires_grad for m in bn] == [False] * 4 + [True] * 9


def test_mobilenet_freeze_at():
    features = _backbone("mobilenet_v3_large", 1.0, 2).features
    assert _frozen(features[0]) and _frozen(features[1])
    assert all(_trainable(f) for f in list(features)[2:])


@pytest.mark.parametrize("freeze_at, frozen_convs", [(0, 0), (2, 2), (5, 5)])
def test_alexnet_freeze_at(freeze_at, frozen_convs):
    flags = _conv_flags(_backbone("alexnet", 1.0, freeze_at).features)
    assert flags == [False] * frozen_convs + [True] * (5 - frozen_convs)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large"])
def test_frozen_bn_replaces_batchnorm(name):
    bb = _backbone(name, 1.0 if name != "resnet18" else 0.25, 0, "frozen_bn")
    assert any(isinstance(m, FrozenBatchNorm2d) for m in bb.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in bb.modules())


def test_frozen_bn_has_no_norm_parameters():
    frozen, trainable = _backbone("resnet18", 0.25, 0, "frozen_bn"), _backbone("resnet18", 0.25, 0, "bn")
    bn_params = sum(p.numel() for m in trainable.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert bn_params > 0
    assert sum(p.numel() for p in frozen.parameters()) == sum(p.numel() for p in trainable.parameters()) - bn_params
    # the statistics are still there, as buffers torchvision's weights fill in
    assert set(frozen.state_dict()) == {k for k in trainable.state_dict() if not k.endswith("num_batches_tracked")}


def test_vgg16_bn_honours_frozen_bn():
    bb = _backbone("vgg16_bn", 1.0, 0, "frozen_bn")
    assert any(isinstance(m, FrozenBatchNorm2d) for m in bb.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bb.modules())


def test_gn_norm_puts_groupnorm_in():
    bb = _backbone("resnet18", 0.25, 0, "gn")
    assert any(isinstance(m, nn.GroupNorm) for m in bb.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bb.modules())


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="model.backbone.norm"):
        build_backbone(BackboneConfig(name="resnet18", width=0.25, norm="batchnorm"))


def test_resnet50_parameter_count_equals_torchvision_minus_fc():
    tv = torchvision.models.resnet50(weights=None)
    expected = sum(p.numel() for p in tv.parameters()) - sum(p.numel() for p in tv.fc.parameters())
    assert expected == 23_508_032
    assert sum(p.numel() for p in _backbone("resnet50", 1.0, 1).parameters()) == expected


def test_resnet_state_dict_keys_are_torchvisions():
    tv_keys = {k for k in torchvision.models.resnet18(weights=None).state_dict() if not k.startswith("fc.")}
    assert set(_backbone("resnet18", 1.0, 2).state_dict()) == tv_keys


def test_scaled_resnet_refuses_weights():
    with pytest.raises(ValueError, match="width 1.0"):
        build_backbone(BackboneConfig(name="resnet18", width=0.5, weights="IMAGENET1K_V1"))


@pytest.mark.parametrize("typo, suggestion", [("resnt50", "resnet50"), ("vgg16bn", "vgg16_bn"), ("mobilenet_v3", "mobilenet_v3_large")])
def test_unknown_backbone_suggests_closest(typo, suggestion):
    with pytest.raises(ValueError) as exc:
        build_backbone(BackboneConfig(name=typo))
    msg = str(exc.value)
    assert f"'{typo}'" in msg
    assert f"did you mean '{suggestion}'" in msg


# ---------------------------------------------------------------- FPN


@pytest.mark.parametrize(
    "in_features, extra_pool, expected",
    [
        (["s4", "s8", "s16", "s32"], True, {"s4": 4, "s8": 8, "s16": 16, "s32": 32, "s64": 64}),
        (["s4", "s8", "s16", "s32"], False, {"s4": 4, "s8": 8, "s16": 16, "s32": 32}),
        (["s32", "s8", "s16"], True, {"s8": 8, "s16": 16, "s32": 32, "s64": 64}),
    ],
)
def test_fpn_output_spec_matches_tensors(in_features, extra_pool, expected):
    bb = _backbone("resnet18", 0.25, 3)
    fpn = FPN(bb.output_spec(), in_features, out_channels=32, extra_pool=extra_pool)
    spec = fpn.output_spec()
    assert {k: v.stride for k, v in spec.items()} == expected
    assert all(v.channels == 32 for v in spec.values())
    with torch.no_grad():
        out = fpn(bb.eval()(torch.rand(2, 3, SIZE, SIZE)))
    assert list(out) == list(spec)  # finest first, extra level last
    for key, feat in out.items():
        stride = spec[key].stride
        assert feat.shape == (2, 32, SIZE // stride, SIZE // stride), key


def test_build_neck_none_and_unknown():
    spec = _backbone("resnet18", 0.25, 3).output_spec()
    assert build_neck(NeckConfig(name="none"), spec, ["s4"]) is None
    assert isinstance(build_neck(NeckConfig(name="fpn", out_channels=16), spec, ["s8", "s16"]), FPN)
    with pytest.raises(ValueError, match="model.neck.name"):
        build_neck(NeckConfig(name="bifpn"), spec, ["s4"])

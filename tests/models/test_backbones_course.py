"""The course's backbones on torchvision's definitions (GoogLeNet, DenseNet, MNASNet, SE-ResNet(X), LeNet-5):
specs tell the truth, parameter totals equal torchvision's / timm's networks without their classifier,
the maps equal torchvision's own intermediate outputs, freezing, norms and weights behave."""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detseg.config.schema import BackboneConfig
from detseg.models.build import build_backbone

SIZE = 64
# (name, width): small widths where the definition has one, so each builds and runs in a blink
CASES = [("googlenet", 1.0), ("densenet121", 0.25), ("densenet169", 0.25), ("mnasnet0_5", 1.0),
         ("mnasnet1_0", 0.25), ("se_resnet50", 0.25), ("se_resnext50_32x4d", 0.25)]


@lru_cache(maxsize=None)
def _backbone(name: str, width: float = 1.0, freeze_at: int = 0, norm: str = "bn"):
    torch.manual_seed(0)
    return build_backbone(BackboneConfig(name=name, width=width, freeze_at=freeze_at, norm=norm))


def _on_meta(name: str):
    with torch.device("meta"):  # exact parameter counts with no init time: DenseNet-161 has 26M
        return build_backbone(BackboneConfig(name=name))


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name, width", CASES)
def test_output_spec_matches_tensors(name, width):
    bb = _backbone(name, width).eval()
    with torch.no_grad():
        out = bb(torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)))
    spec = bb.output_spec()
    assert list(out) == list(spec)
    for key, feat in out.items():
        assert key == f"s{spec[key].stride}"
        assert feat.shape == (2, spec[key].channels, SIZE // spec[key].stride, SIZE // spec[key].stride), key


def test_expected_specs():
    def simple(name, width=1.0):
        return {k: (v.channels, v.stride) for k, v in _backbone(name, width).output_spec().items()}

    assert simple("googlenet") == {"s8": (480, 8), "s16": (832, 16), "s32": (1024, 32)}
    # k0 + l * k per block, halved by each transition: 64 + 6*32, 128 + 12*32, 256 + 24*32, 512 + 16*32
    assert simple("densenet121", 0.25) == {"s4": (64, 4), "s8": (128, 8), "s16": (256, 16), "s32": (256, 32)}
    assert simple("mnasnet0_5") == {"s8": (24, 8), "s16": (48, 16), "s32": (1280, 32)}
    assert simple("se_resnet50", 0.25) == {"s4": (64, 4), "s8": (128, 8), "s16": (256, 16), "s32": (512, 32)}
    assert simple("lenet5") == {"s4": (84, 4)}


def _tv_params_without_classifier(name: str, **kwargs) -> int:
    with torch.device("meta"):
        net = torchvision.models.get_model(name, weights=None, **kwargs)
    head = net.fc if hasattr(net, "fc") else net.classifier
    return _params(net) - _params(head)


@pytest.mark.parametrize("name, kwargs, expected", [
    ("googlenet", {"aux_logits": False, "init_weights": False}, 5_599_904),  # 6,624,904 - 1024 x 1000 - 1000
    ("densenet121", {}, 6_953_856),
    ("densenet161", {}, 26_472_000),
    ("densenet169", {}, 12_484_480),
    ("densenet201", {}, 18_092_928),
    ("mnasnet0_5", {}, 937_512),
    ("mnasnet1_0", {}, 3_102_312),
])
def test_parameter_totals_equal_torchvision_without_classifier(name, kwargs, expected):
    assert _tv_params_without_classifier(name, **kwargs) == expected
    assert _params(_on_meta(name)) == expected


def test_se_resnet_totals_are_timms_without_classifier_and_resnet_plus_the_gates():
    # timm's seresnet50 / seresnext50_32x4d (28,088,024 / 27,559,896) minus fc (2048 x 1000 + 1000)
    assert _params(_on_meta("se_resnet50")) == 26_039_024
    assert _params(_on_meta("se_resnext50_32x4d")) == 25_510_896
    gates = sum(n * (2 * c * c // 16 + c // 16 + c) for n, c in [(3, 256), (4, 512), (6, 1024), (3, 2048)])
    assert _params(_on_meta("se_resnet50")) - _tv_params_without_classifier("resnet50") == gates == 2_530_992
    assert _params(_on_meta("se_resnext50_32x4d")) - _tv_params_without_classifier("resnext50_32x4d") == gates


def _tv_maps(net: nn.Module, modules: dict[str, nn.Module], images) -> dict[str, torch.Tensor]:
    maps = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, key=key: maps.__setitem__(key, out.clone()))
             for key, m in modules.items()]
    with torch.no_grad():
        net(images)
    for hook in hooks:
        hook.remove()
    return maps


def test_googlenet_maps_are_torchvisions_inception_outputs():
    torch.manual_seed(0)
    tv = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True).eval()
    bb = _backbone("googlenet").eval()
    bb.load_state_dict({k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")})
    images = torch.rand(1, 3, SIZE, SIZE)
    expected = _tv_maps(tv, {"s8": tv.inception3b, "s16": tv.inception4e, "s32": tv.inception5b}, images)
    with torch.no_grad():
        out = bb(images)
    for key in expected:
        torch.testing.assert_close(out[key], expected[key], rtol=0, atol=0)


def test_densenet_last_map_is_torchvisions_relu_features():
    torch.manual_seed(0)
    tv = torchvision.models.densenet121(weights=None).eval()
    bb = _on_cpu("densenet121").eval()
    bb.features.load_state_dict(tv.features.state_dict())
    images = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(bb(images)["s32"], torch.relu(tv.features(images)), rtol=0, atol=0)


@lru_cache(maxsize=None)
def _on_cpu(name: str):
    return build_backbone(BackboneConfig(name=name))


def test_googlenet_with_weights_rescales_its_input_as_torchvision():
    bb = _backbone("googlenet")
    assert bb.transform_input is False  # random init: nothing to match
    images = torch.rand(1, 3, 8, 8)
    bb.transform_input = True
    try:
        tv = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=True)
        torch.testing.assert_close(bb.prepare(images), tv._transform_input(images))
    finally:
        bb.transform_input = False


def _frozen(modules) -> list[bool]:
    return [all(not p.requires_grad for p in m.parameters()) for m in modules]


def test_freeze_at_freezes_the_stem_then_whole_stages():
    bb = _backbone("googlenet", 1.0, 2)
    assert _frozen([bb.conv1, bb.conv3, bb.inception3b, bb.inception4a, bb.inception5b]) == [True, True, True, False, False]
    dense = _backbone("densenet121", 0.25, 3).features
    assert _frozen([dense.conv0, dense.denseblock2, dense.transition2.norm, dense.transition2.conv,
                    dense.denseblock3]) == [True, True, True, False, False]
    mnas = _backbone("mnasnet0_5", 1.0, 1).layers
    assert _frozen([mnas[0], mnas[8], mnas[9]]) == [True, True, False]
    lenet = _backbone("lenet5", 1.0, 2)
    assert _frozen([lenet.c1, lenet.c3, lenet.c5, lenet.f6]) == [True, True, False, False]
    se = _backbone("se_resnet50", 0.25, 2)
    assert _frozen([se.conv1, se.layer1, se.layer2]) == [True, True, False]


def test_compute_only_stops_after_the_deepest_stage_read():
    bb = build_backbone(BackboneConfig(name="densenet121", width=0.25)).eval()
    bb.compute_only(["s8"])
    with torch.no_grad():
        out = bb(torch.rand(1, 3, SIZE, SIZE))
    assert list(out) == ["s4", "s8"]
    assert not any(p.requires_grad for p in bb.features.denseblock4.parameters())
    assert all(p.requires_grad for p in bb.features.denseblock2.parameters())


@pytest.mark.parametrize("name, width", [("googlenet", 1.0), ("densenet121", 0.25), ("mnasnet0_5", 1.0),
                                         ("se_resnet50", 0.25)])
def test_frozen_bn_replaces_every_batchnorm(name, width):
    bb = _backbone(name, width, 0, "frozen_bn")
    assert any(isinstance(m, FrozenBatchNorm2d) for m in bb.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bb.modules())


@pytest.mark.parametrize("name, config, message", [
    ("googlenet", dict(norm="gn"), "model.backbone.norm 'gn' is not available for googlenet"),
    ("densenet121", dict(norm="batchnorm"), "model.backbone.norm must be one of"),
    ("googlenet", dict(width=0.5), "model.backbone.width must be 1.0 for googlenet"),
    ("lenet5", dict(width=0.5), "model.backbone.width must be 1.0 for lenet5"),
    ("mnasnet1_0", dict(width=0.5, weights="DEFAULT"), "needs model.backbone.width 1.0"),
    ("densenet121", dict(weights="IMAGENET"), "neither a file nor one of DenseNet121_Weights"),
    ("se_resnet50", dict(weights="DEFAULT"), "torchvision has no se_resnet50 weights.*timm/seresnet50"),
    ("lenet5", dict(weights="DEFAULT"), "lenet5 has no published weights"),
])
def test_bad_settings_are_one_line_naming_the_key(name, config, message):
    with pytest.raises(ValueError, match=message) as exc:
        build_backbone(BackboneConfig(name=name, **config))
    assert "\n" not in str(exc.value)


def test_local_torchvision_state_dict_loads(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.mnasnet0_5(weights=None)
    torch.save(tv.state_dict(), tmp_path / "mnasnet.pth")
    bb = build_backbone(BackboneConfig(name="mnasnet0_5", weights=str(tmp_path / "mnasnet.pth")))
    torch.testing.assert_close(bb.layers[0].weight, tv.layers[0].weight, rtol=0, atol=0)


def test_lenet5_reads_32_pixels_down_to_one_cell():
    bb = _backbone("lenet5").eval()
    with torch.no_grad():
        assert bb(torch.rand(2, 3, 32, 32))["s4"].shape == (2, 84, 1, 1)
        assert bb(torch.rand(1, 3, 64, 64))["s4"].shape == (1, 84, 9, 9)  # 64 -> 60, 30, 26, 13, 9


def test_se_resnet_takes_resnets_dilation():
    bb = build_backbone(BackboneConfig(name="se_resnet50", width=0.25, dilation=[False, True, True])).eval()
    assert {k: v.stride for k, v in bb.output_spec().items()} == {"s4": 4, "s8": 8, "s16": 8, "s32": 8}
    with torch.no_grad():
        assert bb(torch.rand(1, 3, SIZE, SIZE))["s32"].shape[-2:] == (SIZE // 8, SIZE // 8)
    with pytest.raises(ValueError, match="model.backbone.dilation is for ResNets only"):
        build_backbone(BackboneConfig(name="densenet121", width=0.25, dilation=[False, True, True]))


@pytest.mark.parametrize("name, width", CASES + [("resnet18", 0.5), ("mobilenet_v3_large", 1.0)])
def test_batch_norm_running_statistics_follow_training_within_hundreds_of_steps(name, width):
    # a detector trains for minutes to hours: a BN momentum like TensorFlow's 0.0003 (torchvision's MNASNet)
    # would leave the statistics evaluation uses near their initial values
    bb = build_backbone(BackboneConfig(name=name, width=width)).train()
    norms = [m for m in bb.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and min(m.momentum for m in norms) >= 0.01
    first = norms[0]
    before = first.running_mean.clone()
    with torch.no_grad():
        bb(torch.rand(2, 3, SIZE, SIZE) + 1.0)  # inputs with a clear non-zero mean
    assert (first.running_mean - before).abs().max() > 1e-3

"""timm as a backbone source (model.backbone.name: timm/<model>): maps keyed by timm's reductions, local
weight files through timm's own loader, pretrained tags failing offline in one line, and the own
SE-ResNet equal to timm's."""
from __future__ import annotations

from functools import lru_cache

import pytest
import torch

from detseg.config.schema import BackboneConfig
from detseg.models.backbones.base import WeightsDownloadError
from detseg.models.build import build_backbone

timm = pytest.importorskip("timm")
SIZE = 64


@lru_cache(maxsize=None)
def _backbone(name: str, freeze_at: int = 0, norm: str = "bn"):
    torch.manual_seed(0)
    return build_backbone(BackboneConfig(name=name, freeze_at=freeze_at, norm=norm))


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name, expected", [
    ("timm/resnet18d", {"s2": (64, 2), "s4": (64, 4), "s8": (128, 8), "s16": (256, 16), "s32": (512, 32)}),
    ("timm/efficientnet_b0", {"s2": (16, 2), "s4": (24, 4), "s8": (40, 8), "s16": (112, 16), "s32": (320, 32)}),
])
def test_cnn_maps_are_keyed_by_timms_reductions(name, expected):
    bb = _backbone(name).eval()
    info = bb.body.feature_info
    assert {k: (v.channels, v.stride) for k, v in bb.output_spec().items()} == expected
    assert [s for _, s in expected.values()] == info.reduction() and [c for c, _ in expected.values()] == info.channels()
    with torch.no_grad():
        out = bb(torch.rand(1, 3, SIZE, SIZE))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, c, SIZE // s, SIZE // s) for k, (c, s) in expected.items()}


def test_parameter_totals_are_timms_networks_without_their_head():
    with torch.device("meta"):
        resnet = timm.create_model("resnet18d")
        effnet = timm.create_model("efficientnet_b0", features_only=True)
    assert _params(_backbone("timm/resnet18d")) == _params(resnet) - _params(resnet.get_classifier()) == 11_195_744
    # efficientnet's features stop before conv_head (320 -> 1280), which only the classifier reads
    assert _params(_backbone("timm/efficientnet_b0")) == _params(effnet) == 3_595_388


def test_vit_features_only_keeps_the_deepest_block_at_its_one_stride():
    bb = _backbone("timm/vit_tiny_patch16_224").eval()
    assert bb.body.feature_info.reduction() == [16, 16, 16]  # timm's default: the last three blocks
    assert {k: (v.channels, v.stride) for k, v in bb.output_spec().items()} == {"s16": (192, 16)}
    with torch.no_grad():
        assert bb(torch.rand(1, 3, 224, 224))["s16"].shape == (1, 192, 14, 14)


def test_vit_reads_any_input_size_and_matches_timms_fixed_size_model_at_224():
    bb = _backbone("timm/vit_tiny_patch16_224").eval()
    fixed = timm.create_model("vit_tiny_patch16_224", features_only=True).eval()
    fixed.load_state_dict(bb.body.state_dict())
    image = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(bb(image)["s16"], fixed(image)[-1], atol=1e-5)
        assert bb(torch.rand(2, 3, 96, 160))["s16"].shape == (2, 192, 6, 10)  # a detector's padded batch


def test_swin_maps_come_channels_first_like_every_other_backbone():
    bb = _backbone("timm/swin_tiny_patch4_window7_224").eval()
    image = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        out, reference = bb(image), bb.body(image)  # timm gives Swin's stages as NHWC
    assert [(k, v.channels) for k, v in bb.output_spec().items()] == [("s4", 96), ("s8", 192), ("s16", 384), ("s32", 768)]
    for (key, spec), nhwc in zip(bb.output_spec().items(), reference):
        assert out[key].shape == (1, spec.channels, 224 // spec.stride, 224 // spec.stride)
        assert torch.equal(out[key], nhwc.permute(0, 3, 1, 2))


@pytest.mark.parametrize("name, channels", [("timm/nasnetalarge", [96, 168, 1008, 2016, 4032]),
                                            ("timm/pnasnet5large", [96, 270, 1080, 2160, 4320])])
def test_nasnet_and_pnasnet_come_from_timm(name, channels):
    with torch.device("meta"):  # 85M parameters: built without init
        spec = build_backbone(BackboneConfig(name=name)).output_spec()
    assert [v.channels for v in spec.values()] == channels and list(spec) == ["s2", "s4", "s8", "s16", "s32"]


def test_local_state_dict_loads_through_timms_pretrained_mechanism(tmp_path):
    torch.manual_seed(3)
    full = timm.create_model("resnet18d").eval()
    torch.save(full.state_dict(), tmp_path / "resnet18d.pth")  # with the fc, as published
    bb = build_backbone(BackboneConfig(name="timm/resnet18d", weights=str(tmp_path / "resnet18d.pth"))).eval()
    images = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = full.forward_features(images)
        torch.testing.assert_close(bb(images)["s32"], expected, rtol=0, atol=0)


def test_pretrained_tag_fails_offline_in_one_line_naming_the_download(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)  # what a machine without network sees, at once
    monkeypatch.setattr(hub.constants, "HF_HUB_CACHE", str(tmp_path))
    for weights, tag in [("DEFAULT", "ra2_in1k"), ("ra2_in1k", "ra2_in1k")]:
        with pytest.raises(WeightsDownloadError) as exc:
            build_backbone(BackboneConfig(name="timm/resnet18d", weights=weights))
        message = str(exc.value)
        assert "\n" not in message
        assert f"resnet18d.{tag} from https://huggingface.co/timm/resnet18d.{tag}" in message
        assert "model.backbone.weights" in message


@pytest.mark.parametrize("config, message", [
    (dict(name="timm/resnet18e"), "'timm/resnet18e' names no timm model; did you mean timm/resnet18"),
    (dict(name="timm/resnet18d", weights="imagenet"),
     "'imagenet' is neither a file nor a timm pretrained tag of resnet18d .*ra2_in1k"),
    (dict(name="timm/resnet18d", width=0.5), "model.backbone.width must be 1.0 for timm/resnet18d"),
    (dict(name="timm/resnet18d", norm="gn"), "model.backbone.norm 'gn' is not available for timm/resnet18d"),
    (dict(name="timmresnet18d"), "model.backbone.name 'timmresnet18d' is unknown"),
    (dict(name="timm/"), "model.backbone.name 'timm/' names no timm model"),
])
def test_bad_timm_settings_are_one_line(config, message):
    with pytest.raises(ValueError, match=message) as exc:
        build_backbone(BackboneConfig(**config))
    assert "\n" not in str(exc.value)


def test_freeze_at_follows_timms_features():
    bb = _backbone("timm/resnet18d", 2)  # feature 0: the stem (act1, no parameters of its own), 1: layer1
    body = bb.body
    assert not any(p.requires_grad for m in (body.conv1, body.bn1, body.layer1) for p in m.parameters())
    assert all(p.requires_grad for m in (body.layer2, body.layer4) for p in m.parameters())
    effnet = _backbone("timm/efficientnet_b0", 1).body
    assert not any(p.requires_grad for p in effnet.conv_stem.parameters())
    assert not any(p.requires_grad for p in effnet.blocks[0].parameters())
    assert all(p.requires_grad for p in effnet.blocks[1].parameters())


def test_frozen_bn_uses_timms_freezing():
    bb = _backbone("timm/efficientnet_b0", 0, "frozen_bn")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in bb.modules())
    assert any(isinstance(m, timm.layers.FrozenBatchNormAct2d) for m in bb.modules())


@pytest.mark.parametrize("name, timm_name", [("se_resnet50", "seresnet50"), ("se_resnext50_32x4d", "seresnext50_32x4d")])
def test_own_se_resnet_equals_timms_with_its_weights(name, timm_name):
    torch.manual_seed(0)
    reference = timm.create_model(timm_name, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    own = _backbone(name).eval()
    own.load_state_dict(reference.state_dict())  # strict: timm's keys are the backbone's (conv1, layer1.0.se.fc1, ...)
    images = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        for key, expected in zip(["s4", "s8", "s16", "s32"], reference(images)):
            torch.testing.assert_close(own(images)[key], expected, rtol=1e-4, atol=1e-5)

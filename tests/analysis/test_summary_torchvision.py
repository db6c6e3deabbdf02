"""Classic networks summarised by name: totals equal torchvision's, FLOPs its documented figures, and the
receptive fields of VGG-16 and ResNet-50 the published ones."""
import pytest
import torch
import torchvision

from detseg.analysis import summarize
from detseg.analysis.networks import build_named_network
from detseg.models.backbones import BACKBONES

# name, torchvision builder kwargs (the test-time network summarised), weights enum for the documented figures
NETWORKS = [
    ("vgg16", {}, "VGG16_Weights"),
    ("vgg19", {}, "VGG19_Weights"),
    ("resnet50", {}, "ResNet50_Weights"),
    ("googlenet", {"aux_logits": False, "init_weights": False}, "GoogLeNet_Weights"),
    ("mobilenet_v3_large", {}, "MobileNet_V3_Large_Weights"),
]


def _summarise(name: str, with_classifier: bool = True, size: int = 224):
    with torch.device("meta"):  # no init time, no memory: VGG-19 has 144M parameters
        net = build_named_network(name, with_classifier)
    return summarize(net, torch.zeros(1, 3, size, size, device="meta"))


@pytest.mark.parametrize("name, kwargs, weights", NETWORKS)
def test_totals_equal_torchvision(name, kwargs, weights):
    summary = _summarise(name)
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(**kwargs)
    meta = getattr(torchvision.models, weights).IMAGENET1K_V1.meta
    assert summary.total_params == sum(p.numel() for p in reference.parameters()) == meta["num_params"]
    assert sum(r.params for r in summary.rows) == summary.total_params
    # torchvision documents GFLOPS as multiply-adds (3 decimals); FlopCounterMode counts 2 FLOPs per multiply-add
    assert summary.total_flops / 2e9 == pytest.approx(meta["_ops"], abs=6e-4)


def test_vgg16_conv5_3_and_pool5_receptive_fields():
    summary = _summarise("vgg16")
    conv5_3, pool5 = summary.row("features.28"), summary.row("features.30")
    assert (conv5_3.type, conv5_3.output) == ("Conv2d", [1, 512, 14, 14])
    assert (conv5_3.receptive_field, conv5_3.stride) == (196, 16)
    assert (pool5.type, pool5.output, pool5.receptive_field, pool5.stride) == ("MaxPool2d", [1, 512, 7, 7], 212, 32)


def test_resnet50_backbone_outputs_receptive_fields():
    """torchvision's ResNet-50 (stride in the 3x3 conv): 7x7/2 stem -> 7, maxpool -> 11, then +2*j per 3x3
    conv: layer1 (3 blocks, j 4) 35, layer2 (4, j 8) 91, layer3 (6, j 16) 267, layer4 (3, j 32) 427."""
    summary = _summarise("resnet50", with_classifier=False)
    assert [(f.name, f.stride, f.receptive_field) for f in summary.features] == [
        ("s4", 4, 35), ("s8", 8, 91), ("s16", 16, 267), ("s32", 32, 427)]
    assert summary.total_params == 23_508_032  # the classifier's fc (2048 x 1000 + 1000) left out


def test_classifier_names_and_backbone_names():
    assert _summarise("resnet50").total_params - _summarise("resnet50", False).total_params == 2048 * 1000 + 1000
    # a name only torchvision knows is its whole classification network, with or without the flag
    assert _summarise("inception_v3", with_classifier=False, size=299).total_params == 23_834_568
    # googlenet is also a detseg backbone: without the flag, the backbone (no fc: 1024 x 1000 + 1000)
    assert _summarise("googlenet").total_params == 6_624_904
    assert _summarise("googlenet", with_classifier=False).total_params == 6_624_904 - 1_025_000
    with pytest.raises(ValueError, match="did you mean"):
        build_named_network("resnet05")
    with pytest.raises(ValueError, match="no classification network"):
        build_named_network("vgg16_ssd", with_classifier=True)


# a source prefix's entry ("timm/") is measured on one of its models
REGISTERED = [name + "resnet18d" if name.endswith("/") else name for name in sorted(BACKBONES)]


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_backbone_measures_the_strides_it_declares(name):
    if name.startswith("timm/"):
        pytest.importorskip("timm")
    summary = _summarise(name, with_classifier=False, size=227)
    assert summary.features, name
    for feature in summary.features:
        assert feature.rf_stride == feature.stride, (name, feature)
        assert feature.shape[1] == feature.channels

"""Backbone registry: config names -> constructors (detseg.models.build reads the config). Nothing is
imported from a config string.

A name with a source prefix ("timm/<model>") is looked up as its prefix: the entry for "timm/" takes the
model name as its first argument (``registry_key`` says which entry a config name picks).
"""
from __future__ import annotations

from functools import partial

from detseg.models.backbones.alexnet import AlexNetBackbone
from detseg.models.backbones.alexnet_v1 import AlexNetV1Backbone
from detseg.models.backbones.base import Backbone
from detseg.models.backbones.densenet import DENSENETS, DenseNetBackbone
from detseg.models.backbones.googlenet import GoogLeNetBackbone
from detseg.models.backbones.lenet import LeNet5Backbone
from detseg.models.backbones.mnasnet import ALPHAS, MNASNetBackbone
from detseg.models.backbones.se_resnet import SE_RESNETS, SEResNetBackbone
from detseg.models.backbones.timm_backbone import TimmBackbone
from detseg.models.layers.features import FeatureSpec
from detseg.models.backbones.mobilenet import MobileNetV3Backbone
from detseg.models.backbones.resnet import ResNetBackbone
from detseg.models.backbones.ssd_backbones import MobileNetV3SSDLiteBackbone, VGG16SSDBackbone
from detseg.models.backbones.vgg import VGGBackbone

TIMM_PREFIX = "timm/"
BACKBONES = {
    **{name: partial(ResNetBackbone, name) for name in ("resnet18", "resnet34", "resnet50", "resnet101")},
    "vgg16": partial(VGGBackbone, "vgg16"),
    "vgg16_bn": partial(VGGBackbone, "vgg16_bn"),
    "mobilenet_v3_large": partial(MobileNetV3Backbone, "mobilenet_v3_large"),
    "alexnet": partial(AlexNetBackbone, "alexnet"),
    "alexnet_v1": partial(AlexNetV1Backbone, "alexnet_v1"),
    "vgg16_ssd": partial(VGG16SSDBackbone, "vgg16"),
    "mobilenet_v3_large_ssdlite": partial(MobileNetV3SSDLiteBackbone, "mobilenet_v3_large"),
    "googlenet": partial(GoogLeNetBackbone, "googlenet"),
    **{name: partial(DenseNetBackbone, name) for name in DENSENETS},
    **{name: partial(MNASNetBackbone, name) for name in ALPHAS},
    **{name: partial(SEResNetBackbone, name) for name in SE_RESNETS},
    "lenet5": partial(LeNet5Backbone, "lenet5"),
    TIMM_PREFIX: TimmBackbone,  # "timm/<model>": any timm network (an optional dependency)
}


def registry_key(name: str) -> str:
    """The BACKBONES entry a ``model.backbone.name`` picks: its source prefix, or the name itself."""
    return TIMM_PREFIX if name.startswith(TIMM_PREFIX) else name


__all__ = ["BACKBONES", "TIMM_PREFIX", "Backbone", "FeatureSpec", "registry_key"]

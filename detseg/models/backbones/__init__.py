"""Backbone registry: config names -> constructors (detseg.models.build reads the config). Nothing is
imported from a config string."""
from __future__ import annotations

from functools import partial

from detseg.models.backbones.alexnet import AlexNetBackbone
from detseg.models.backbones.alexnet_v1 import AlexNetV1Backbone
from detseg.models.backbones.base import Backbone
from detseg.models.layers.features import FeatureSpec
from detseg.models.backbones.mobilenet import MobileNetV3Backbone
from detseg.models.backbones.resnet import ResNetBackbone
from detseg.models.backbones.ssd_backbones import MobileNetV3SSDLiteBackbone, VGG16SSDBackbone
from detseg.models.backbones.vgg import VGGBackbone

BACKBONES = {
    **{name: partial(ResNetBackbone, name) for name in ("resnet18", "resnet34", "resnet50", "resnet101")},
    "vgg16": partial(VGGBackbone, "vgg16"),
    "vgg16_bn": partial(VGGBackbone, "vgg16_bn"),
    "mobilenet_v3_large": partial(MobileNetV3Backbone, "mobilenet_v3_large"),
    "alexnet": partial(AlexNetBackbone, "alexnet"),
    "alexnet_v1": partial(AlexNetV1Backbone, "alexnet_v1"),
    "vgg16_ssd": partial(VGG16SSDBackbone, "vgg16"),
    "mobilenet_v3_large_ssdlite": partial(MobileNetV3SSDLiteBackbone, "mobilenet_v3_large"),
}

__all__ = ["BACKBONES", "Backbone", "FeatureSpec"]

"""Backbone registry: config names -> constructors. Nothing is imported from a config string."""
from __future__ import annotations

from functools import partial

from detseg.models.backbones.alexnet import AlexNetBackbone
from detseg.models.backbones.alexnet_v1 import AlexNetV1Backbone
from detseg.models.backbones.base import Backbone
from detseg.models.layers.features import FeatureSpec
from detseg.models.backbones.mobilenet import MobileNetV3Backbone
from detseg.models.backbones.resnet import ResNetBackbone
from detseg.models.backbones.ssd_backbones import MobileNetV3SSDLiteBackbone, VGG16SSDBackbone
from detseg.models.backbones.transfer import load_backbone_from_checkpoint, training_checkpoint
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


def build_backbone(cfg) -> Backbone:
    """cfg: ``model.backbone`` section."""
    if cfg.name not in BACKBONES:
        import difflib

        close = difflib.get_close_matches(cfg.name, list(BACKBONES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"model.backbone.name '{cfg.name}' is unknown{hint} (known: {', '.join(BACKBONES)})")
    # a detseg run's checkpoint (e.g. a pre-trained classifier) is loaded after building, so it also
    # fits the width-scaled backbones that torchvision has no weights for
    from_run = training_checkpoint(cfg.weights)
    kwargs = dict(weights=None if from_run else cfg.weights, norm=cfg.norm, freeze_at=cfg.freeze_at, width=cfg.width)
    if any(getattr(cfg, "dilation", ())):
        if not cfg.name.startswith("resnet"):
            raise ValueError(f"model.backbone.dilation is for ResNets only, not '{cfg.name}'")
        kwargs["dilation"] = cfg.dilation
    backbone = BACKBONES[cfg.name](**kwargs)
    if from_run:
        load_backbone_from_checkpoint(backbone, cfg.weights)
    return backbone


__all__ = ["BACKBONES", "Backbone", "FeatureSpec", "build_backbone"]

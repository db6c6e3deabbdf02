"""Build a detector from ``cfg.model``; heads are sized from the feature specs, never backbone names."""
from __future__ import annotations

from detseg.models.backbones import build_backbone
from detseg.models.meta_arch.region_cnn import build_rcnn
from detseg.models.meta_arch.two_stage import TwoStageDetector
from detseg.models.necks.fpn import build_neck
from detseg.models.proposals.precomputed import PrecomputedProposals
from detseg.models.proposals.rpn import RPN
from detseg.models.roi.roi_heads import RoIHeads


def _backbone_and_neck(cfg):
    backbone = build_backbone(cfg.backbone)
    spec = backbone.output_spec()
    if cfg.neck.name != "none":
        _check_features("model.backbone.out_features", cfg.backbone.out_features, spec)
    neck = build_neck(cfg.neck, spec, cfg.backbone.out_features)
    return backbone, neck, (neck.output_spec() if neck is not None else spec)


def build_faster_rcnn(cfg, num_classes: int) -> TwoStageDetector:
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.rpn.in_features", cfg.rpn.in_features, spec)
    _check_features("model.roi.in_features", cfg.roi.in_features, spec)
    return TwoStageDetector(
        backbone, neck, RPN(cfg.rpn, spec), RoIHeads(cfg.roi, spec, num_classes),
        cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility,
    )


def build_fast_rcnn(cfg, num_classes: int) -> TwoStageDetector:
    """Faster R-CNN's model with precomputed proposals in place of the RPN (SPPnet: the 'spp' pooler)."""
    if cfg.proposals.source == "rpn":
        raise ValueError(f"model.arch '{cfg.arch}' reads precomputed proposals: set model.proposals.source "
                         "to 'selective_search' or 'file'")
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.roi.in_features", cfg.roi.in_features, spec)
    return TwoStageDetector(
        backbone, neck, PrecomputedProposals(), RoIHeads(cfg.roi, spec, num_classes),
        cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility,
    )


def build_sppnet(cfg, num_classes: int) -> TwoStageDetector:
    if cfg.roi.pooler != "spp":
        raise ValueError(f"model.arch 'sppnet' pools with a spatial pyramid: set model.roi.pooler to 'spp' "
                         f"(got '{cfg.roi.pooler}')")
    return build_fast_rcnn(cfg, num_classes)


ARCHITECTURES = {
    "faster_rcnn": build_faster_rcnn, "fast_rcnn": build_fast_rcnn, "sppnet": build_sppnet, "rcnn": build_rcnn,
}


def build_model(model_cfg, num_classes: int | None = None):
    num_classes = num_classes if num_classes is not None else model_cfg.num_classes
    if num_classes is None:
        raise ValueError("model.num_classes is not set and no training set was given to count categories")
    if model_cfg.arch not in ARCHITECTURES:
        raise ValueError(f"model.arch '{model_cfg.arch}' is unknown (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[model_cfg.arch](model_cfg, num_classes)


def _check_features(key: str, wanted: list[str], spec: dict) -> None:
    missing = [name for name in wanted if name not in spec]
    if missing:
        raise ValueError(f"{key} names {missing}, but the features available are {list(spec)}")

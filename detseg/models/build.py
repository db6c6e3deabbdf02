"""Build a detector from ``cfg.model``; heads are sized from the feature specs, never backbone names."""
from __future__ import annotations

from detseg.models.backbones import build_backbone
from detseg.models.dense.ssd_head import SSDHead
from detseg.models.dense.yolo_head import YOLOHead
from detseg.models.meta_arch.classifier import Classifier
from detseg.models.meta_arch.one_stage import OneStageDetector
from detseg.models.layers.features import FeatureSpec
from detseg.models.meta_arch.region_cnn import IMAGE, RegionCNN, WarpPooler
from detseg.models.meta_arch.segmentor import Segmentor
from detseg.models.meta_arch.two_stage import TwoStageDetector
from detseg.models.necks.fpn import build_neck
from detseg.models.proposals.precomputed import PrecomputedProposals
from detseg.models.proposals.rpn import RPN
from detseg.models.roi.mask_roi_heads import MaskRoIHeads
from detseg.models.roi.roi_heads import RoIHeads
from detseg.models.seg.fcn import SKIP_VARIANTS, build_fcn_heads


def _backbone_and_neck(cfg):
    backbone = build_backbone(cfg.backbone)
    spec = backbone.output_spec()
    if cfg.neck.name != "none":
        _check_features("model.backbone.out_features", cfg.backbone.out_features, spec)
    neck = build_neck(cfg.neck, spec, cfg.backbone.out_features)
    if neck is not None:
        backbone.compute_only(cfg.backbone.out_features)
    return backbone, neck, (neck.output_spec() if neck is not None else spec)


def build_faster_rcnn(cfg, num_classes: int) -> TwoStageDetector:
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.rpn.in_features", cfg.rpn.in_features, spec)
    _check_features("model.roi.in_features", cfg.roi.in_features, spec)
    return TwoStageDetector(
        backbone, neck, RPN(cfg.rpn, spec), RoIHeads(cfg.roi, spec, num_classes),
        cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility,
    )


def build_mask_rcnn(cfg, num_classes: int) -> TwoStageDetector:
    """Faster R-CNN whose RoI heads also predict a mask per detection."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.rpn.in_features", cfg.rpn.in_features, spec)
    _check_features("model.roi.in_features", cfg.roi.in_features, spec)
    _check_features("model.mask.in_features", cfg.mask.in_features or [], spec)
    return TwoStageDetector(
        backbone, neck, RPN(cfg.rpn, spec), MaskRoIHeads(cfg.roi, cfg.mask, spec, num_classes),
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


def build_rcnn(cfg, num_classes: int) -> RegionCNN:
    if cfg.proposals.source == "rpn":
        raise ValueError("model.arch 'rcnn' reads precomputed proposals: set model.proposals.source "
                         "to 'selective_search' or 'file'")
    if len(cfg.roi.in_features) != 1:
        raise ValueError("model.arch 'rcnn' pools one backbone feature per region: set model.roi.in_features to one")
    backbone = build_backbone(cfg.backbone)
    pooler = WarpPooler(backbone, cfg.roi.in_features[0], cfg.rcnn.warp_size, cfg.rcnn.context_padding,
                        cfg.rcnn.chunk_size)
    roi_heads = RoIHeads(cfg.roi, {IMAGE: FeatureSpec(3, 1)}, num_classes, pooler=pooler)
    return RegionCNN(roi_heads, cfg.pixel_mean, cfg.pixel_std)


def build_fcn(cfg, num_classes: int) -> Segmentor:
    """FCN-32s/16s/8s (Long et al.) or torchvision's FCN (``model.fcn.variant``), on any backbone."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    if neck is not None:
        raise ValueError("model.arch 'fcn' reads the backbone directly: set model.neck.name to 'none'")
    reads = SKIP_VARIANTS.get(cfg.fcn.variant, 1)
    if len(cfg.fcn.in_features) < reads:
        raise ValueError(f"model.fcn.variant '{cfg.fcn.variant}' reads {reads} maps, "
                         f"model.fcn.in_features names {cfg.fcn.in_features}")
    _check_features("model.fcn.in_features", cfg.fcn.in_features[:reads], spec)
    if cfg.fcn.aux_loss:
        _check_features("model.fcn.aux_in_feature", [cfg.fcn.aux_in_feature], spec)
    backbone.compute_only(cfg.fcn.in_features[:reads] + ([cfg.fcn.aux_in_feature] if cfg.fcn.aux_loss else []))
    head, aux = build_fcn_heads(cfg.fcn, spec, num_classes)
    return Segmentor(backbone, head, aux, cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


def build_yolo(cfg, num_classes: int) -> OneStageDetector:
    """YOLO v1 on one feature map of any backbone (or neck)."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.yolo.in_feature", [cfg.yolo.in_feature], spec)
    if neck is None:
        backbone.compute_only([cfg.yolo.in_feature])
    return OneStageDetector(backbone, neck, YOLOHead(cfg.yolo, spec, num_classes),
                            cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


def build_ssd(cfg, num_classes: int) -> OneStageDetector:
    """SSD / SSDlite: usually a backbone plus the "ssd" neck (L2Norm, extra layers)."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.ssd.in_features", cfg.ssd.in_features, spec)
    return OneStageDetector(backbone, neck, SSDHead(cfg.ssd, spec, num_classes),
                            cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


def build_classifier(cfg, num_classes: int) -> Classifier:
    """Any registry backbone -> global average pool of one map (default: the deepest) -> dropout -> linear."""
    if cfg.neck.name != "none":
        raise ValueError("model.arch 'classifier' reads the backbone directly: set model.neck.name to 'none'")
    backbone = build_backbone(cfg.backbone)
    spec = backbone.output_spec()
    order = list(spec)  # dilated stages share a stride: the later one is the deeper
    in_feature = cfg.classifier.in_feature or max(order, key=lambda name: (spec[name].stride, order.index(name)))
    _check_features("model.classifier.in_feature", [in_feature], spec)
    return Classifier(backbone, in_feature, num_classes, cfg.classifier.dropout,
                      cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


ARCHITECTURES = {
    "faster_rcnn": build_faster_rcnn, "mask_rcnn": build_mask_rcnn,
    "fast_rcnn": build_fast_rcnn, "sppnet": build_sppnet, "rcnn": build_rcnn,
    "fcn": build_fcn, "yolo": build_yolo, "ssd": build_ssd, "classifier": build_classifier,
}


def trains_on_masks(model_cfg) -> bool:
    """Whether training samples must carry instance masks (the dataset is built with them)."""
    return model_cfg.arch == "mask_rcnn"


def build_model(model_cfg, num_classes: int | None = None):
    num_classes = num_classes if num_classes is not None else model_cfg.num_classes
    if num_classes is None:
        raise ValueError("model.num_classes is not set and no training set was given to count categories")
    if model_cfg.roi.spp_test_scales and model_cfg.arch != "sppnet":
        raise ValueError("model.roi.spp_test_scales is SPPnet's multi-scale test: it needs model.arch 'sppnet'")
    if model_cfg.arch not in ARCHITECTURES:
        raise ValueError(f"model.arch '{model_cfg.arch}' is unknown (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[model_cfg.arch](model_cfg, num_classes)


def _check_features(key: str, wanted: list[str], spec: dict) -> None:
    missing = [name for name in wanted if name not in spec]
    if missing:
        raise ValueError(f"{key} names {missing}, but the features available are {list(spec)}")

"""Build a model from ``cfg.model``: the one place that reads the config.

Each section becomes explicit keyword arguments of the module it configures; below this file no
module holds or reads a config object. Names in the config pick constructors from module-level
dicts (name -> constructor); an unknown name is one line naming the key and the allowed values.
Heads are sized from the feature specs, never from backbone names. ``class_weights`` (one per class,
from ``solver.class_weights``) weigh the detection families' classification losses (CLASS_WEIGHTED).
"""
from __future__ import annotations

import difflib
from functools import partial

from torch import nn

from detseg.models.backbones import BACKBONES, Backbone, registry_key
from detseg.models.backbones.transfer import load_backbone_from_checkpoint, training_checkpoint
from detseg.models.dense.default_boxes import DefaultBoxes, linear_scales
from detseg.models.dense.ssd_head import SSD_PREDICTORS, SSDHead
from detseg.models.dense.yolo_head import YOLOHead
from detseg.models.layers.features import FeatureSpec
from detseg.models.layers.inference_weights import keep_inference_weights
from detseg.models.meta_arch.classifier import Classifier
from detseg.models.meta_arch.one_stage import OneStageDetector
from detseg.models.meta_arch.region_cnn import RegionCNN, RegionVectors
from detseg.models.meta_arch.segmentor import Segmentor
from detseg.models.meta_arch.two_stage import TwoStageDetector
from detseg.models.necks.fpn import FPN
from detseg.models.necks.ssd_extra import EXTRA_BLOCKS, SSDExtraLayers
from detseg.models.proposals.precomputed import PrecomputedProposals
from detseg.models.proposals.rpn import RPN
from detseg.models.roi.box_head import BoxHead
from detseg.models.roi.mask_roi_heads import MaskRoIHeads
from detseg.models.roi.poolers import RoIAlignPooler, RoIPoolPooler, SPPPooler
from detseg.models.roi.roi_heads import RoIHeads
from detseg.models.seg.fcn import FCNSkipHead, InterpolationHead
from detseg.models.seg.unet import UNetHead


def choose(registry: dict, key: str, name: str):
    """``registry[name]``, or a ValueError naming the config key, the closest name and the allowed ones."""
    if name not in registry:
        close = difflib.get_close_matches(str(name), [str(k) for k in registry], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"{key} '{name}' is unknown{hint} (known: {', '.join(map(str, registry))})")
    return registry[name]


def _check_features(key: str, wanted: list[str], spec: dict) -> None:
    missing = [name for name in wanted if name not in spec]
    if missing:
        raise ValueError(f"{key} names {missing}, but the features available are {list(spec)}")


# ---------------------------------------------------------------- backbone and neck


def build_backbone(cfg) -> Backbone:
    """cfg: ``model.backbone``."""
    key = registry_key(cfg.name)
    make = choose(BACKBONES, "model.backbone.name", key)
    if key.endswith("/"):  # a source prefix: its entry takes the model name after it ("timm/resnet18d")
        make = partial(make, cfg.name[len(key):])
    # a detseg run's checkpoint (e.g. a pre-trained classifier) is loaded after building, so it also
    # fits the width-scaled backbones that torchvision has no weights for
    from_run = training_checkpoint(cfg.weights)
    kwargs = dict(weights=None if from_run else cfg.weights, norm=cfg.norm, freeze_at=cfg.freeze_at, width=cfg.width)
    if any(getattr(cfg, "dilation", ())):
        if not cfg.name.startswith(("resnet", "se_resne")):
            raise ValueError(f"model.backbone.dilation is for ResNets only, not '{cfg.name}'")
        kwargs["dilation"] = cfg.dilation
    backbone = make(**kwargs)
    if from_run:
        load_backbone_from_checkpoint(backbone, cfg.weights)
    return backbone


def _no_neck(cfg, spec: dict[str, FeatureSpec], in_features: list[str]) -> None:
    return None


def _fpn(cfg, spec: dict[str, FeatureSpec], in_features: list[str]) -> FPN:
    return FPN(spec, in_features, cfg.out_channels, cfg.extra_pool)


def _ssd_extra_layers(cfg, spec: dict[str, FeatureSpec], in_features: list[str]) -> SSDExtraLayers:
    block = choose(EXTRA_BLOCKS, "model.neck.extra_style", cfg.extra_style)
    return SSDExtraLayers(spec, in_features, block=block, xavier_init=cfg.extra_style == "vgg",  # Caffe SSD's
                          l2norm_scale=cfg.l2norm_scale, extra_channels=list(cfg.extra_channels),
                          extra_strides=list(cfg.extra_strides))


NECKS = {"none": _no_neck, "fpn": _fpn, "ssd": _ssd_extra_layers}


def build_neck(cfg, spec: dict[str, FeatureSpec], in_features: list[str]) -> nn.Module | None:
    """cfg: ``model.neck``; None for "none", so the model reads the backbone directly."""
    return choose(NECKS, "model.neck.name", cfg.name)(cfg, spec, in_features)


def _backbone_and_neck(cfg):
    backbone = build_backbone(cfg.backbone)
    spec = backbone.output_spec()
    if cfg.neck.name != "none":
        _check_features("model.backbone.out_features", cfg.backbone.out_features, spec)
    neck = build_neck(cfg.neck, spec, cfg.backbone.out_features)
    if neck is not None:
        backbone.compute_only(cfg.backbone.out_features)
    return backbone, neck, (neck.output_spec() if neck is not None else spec)


# ---------------------------------------------------------------- two-stage parts


def _single_map(cfg, pooler: str) -> str:
    if len(cfg.in_features) != 1:
        raise ValueError(f"model.roi.pooler '{pooler}' reads one feature map; set model.roi.in_features to one")
    return cfg.in_features[0]


def _roi_align_pooler(cfg, spec: dict[str, FeatureSpec]) -> RoIAlignPooler:
    strides = [spec[k].stride for k in cfg.in_features]
    return RoIAlignPooler(list(cfg.in_features), strides, cfg.pooler_resolution, cfg.sampling_ratio)


def _roi_pool_pooler(cfg, spec: dict[str, FeatureSpec]) -> RoIPoolPooler:
    name = _single_map(cfg, "roi_pool")
    return RoIPoolPooler(name, spec[name].stride, cfg.pooler_resolution, cfg.pool_upsample)


def _spp_pooler(cfg, spec: dict[str, FeatureSpec]) -> SPPPooler:
    name = _single_map(cfg, "spp")
    return SPPPooler(name, spec[name].stride, cfg.spp_levels, spec[name].channels, cfg.spp_test_scales,
                     cfg.spp_canonical_size)


POOLERS = {"roi_align": _roi_align_pooler, "roi_pool": _roi_pool_pooler, "spp": _spp_pooler}


def build_pooler(cfg, spec: dict[str, FeatureSpec]) -> nn.Module:
    """cfg: ``model.roi``."""
    make = choose(POOLERS, "model.roi.pooler", cfg.pooler)
    if not isinstance(cfg.pool_upsample, int) or cfg.pool_upsample < 1:
        raise ValueError(f"model.roi.pool_upsample must be a whole factor >= 1, got {cfg.pool_upsample!r}")
    if cfg.pool_upsample != 1 and cfg.pooler != "roi_pool":
        raise ValueError(f"model.roi.pool_upsample is for pooler 'roi_pool', not '{cfg.pooler}'; leave it at 1")
    return make(cfg, spec)


def _box_head(cfg, pooler: nn.Module, spec: dict[str, FeatureSpec]) -> BoxHead:
    """cfg: ``model.roi``; poolers with a ``flat_dim`` (SPP, R-CNN) give vectors the fcs read directly."""
    flat_dim = getattr(pooler, "flat_dim", None)
    if flat_dim is not None:
        if cfg.head_conv_dims:
            raise ValueError("model.roi.head_conv_dims needs a square pooled map; this pooler gives vectors")
        return BoxHead(flat_dim, 1, [], cfg.head_fc_dims)
    channels = {spec[k].channels for k in cfg.in_features}
    if len(channels) != 1:
        raise ValueError(f"model.roi.in_features {cfg.in_features} have different channel counts {channels}")
    return BoxHead(channels.pop(), cfg.pooler_resolution, cfg.head_conv_dims, cfg.head_fc_dims)


def _roi_options(cfg) -> dict:
    """``model.roi`` as RoIHeads' keyword arguments (sampling, loss, selection)."""
    return dict(bbox_reg_weights=list(cfg.bbox_reg_weights), fg_iou_thresh=cfg.fg_iou_thresh,
                bg_iou_thresh=cfg.bg_iou_thresh, bg_iou_low=cfg.bg_iou_low,
                batch_size_per_image=cfg.batch_size_per_image, positive_fraction=cfg.positive_fraction,
                add_gt_as_proposals=cfg.add_gt_as_proposals, smooth_l1_beta=cfg.smooth_l1_beta,
                score_thresh=cfg.score_thresh, nms_thresh=cfg.nms_thresh,
                detections_per_image=cfg.detections_per_image)


def build_roi_heads(cfg, spec: dict[str, FeatureSpec], num_classes: int, pooler: nn.Module | None = None,
                    class_weights: list[float] | None = None) -> RoIHeads:
    """cfg: ``model.roi``; ``pooler``: a custom one (R-CNN's RegionVectors), else ``model.roi.pooler``."""
    pooler = pooler if pooler is not None else build_pooler(cfg, spec)
    return RoIHeads(pooler, _box_head(cfg, pooler, spec), num_classes, class_weights=class_weights,
                    **_roi_options(cfg))


def build_mask_roi_heads(cfg, mask_cfg, spec: dict[str, FeatureSpec], num_classes: int,
                         class_weights: list[float] | None = None) -> MaskRoIHeads:
    """cfg: ``model.roi``, mask_cfg: ``model.mask``."""
    pooler = build_pooler(cfg, spec)
    box_head = _box_head(cfg, pooler, spec)
    in_features = list(mask_cfg.in_features or cfg.in_features)
    channels = {spec[k].channels for k in in_features}
    if len(channels) != 1:
        raise ValueError(f"model.mask.in_features {in_features} have different channel counts {channels}")
    mask_pooler = RoIAlignPooler(in_features, [spec[k].stride for k in in_features], mask_cfg.pooler_resolution,
                                 mask_cfg.sampling_ratio)
    return MaskRoIHeads(pooler, box_head, num_classes, mask_pooler=mask_pooler, mask_channels=channels.pop(),
                        mask_conv_dims=list(mask_cfg.conv_dims), class_weights=class_weights, **_roi_options(cfg))


def build_rpn(cfg, spec: dict[str, FeatureSpec]) -> RPN:
    """cfg: ``model.rpn``."""
    if cfg.anchor_sizes == "auto":
        raise ValueError("model.rpn.anchor_sizes is 'auto': it is derived from the training set when training "
                         "starts and stored in the run's config.yaml; build the model from that config")
    return RPN(spec, list(cfg.in_features), anchor_sizes=cfg.anchor_sizes, aspect_ratios=cfg.aspect_ratios,
               conv_depth=cfg.conv_depth, fg_iou_thresh=cfg.fg_iou_thresh, bg_iou_thresh=cfg.bg_iou_thresh,
               batch_size_per_image=cfg.batch_size_per_image, positive_fraction=cfg.positive_fraction,
               pre_nms_topk=(cfg.pre_nms_topk_train, cfg.pre_nms_topk_test),
               post_nms_topk=(cfg.post_nms_topk_train, cfg.post_nms_topk_test), nms_thresh=cfg.nms_thresh,
               min_box_size=cfg.min_box_size, score_thresh=cfg.score_thresh, smooth_l1_beta=cfg.smooth_l1_beta)


# ---------------------------------------------------------------- two-stage and region models


def build_faster_rcnn(cfg, num_classes: int, class_weights: list[float] | None = None) -> TwoStageDetector:
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.rpn.in_features", cfg.rpn.in_features, spec)
    _check_features("model.roi.in_features", cfg.roi.in_features, spec)
    rpn = build_rpn(cfg.rpn, spec)
    return TwoStageDetector(backbone, neck, rpn, build_roi_heads(cfg.roi, spec, num_classes, None, class_weights),
                            cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


def build_mask_rcnn(cfg, num_classes: int, class_weights: list[float] | None = None) -> TwoStageDetector:
    """Faster R-CNN whose RoI heads also predict a mask per detection."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.rpn.in_features", cfg.rpn.in_features, spec)
    _check_features("model.roi.in_features", cfg.roi.in_features, spec)
    _check_features("model.mask.in_features", cfg.mask.in_features or [], spec)
    rpn = build_rpn(cfg.rpn, spec)
    return TwoStageDetector(backbone, neck, rpn, build_mask_roi_heads(cfg.roi, cfg.mask, spec, num_classes,
                                                                      class_weights),
                            cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility, mask_threshold=cfg.mask.threshold)


def build_fast_rcnn(cfg, num_classes: int, class_weights: list[float] | None = None) -> TwoStageDetector:
    """Faster R-CNN's model with precomputed proposals in place of the RPN (SPPnet: the 'spp' pooler)."""
    if cfg.proposals.source == "rpn":
        raise ValueError(f"model.arch '{cfg.arch}' reads precomputed proposals: set model.proposals.source "
                         "to 'selective_search' or 'file'")
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.roi.in_features", cfg.roi.in_features, spec)
    roi_heads = build_roi_heads(cfg.roi, spec, num_classes, None, class_weights)
    return TwoStageDetector(backbone, neck, PrecomputedProposals(), roi_heads,
                            cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


def build_sppnet(cfg, num_classes: int, class_weights: list[float] | None = None) -> TwoStageDetector:
    if cfg.roi.pooler != "spp":
        raise ValueError(f"model.arch 'sppnet' pools with a spatial pyramid: set model.roi.pooler to 'spp' "
                         f"(got '{cfg.roi.pooler}')")
    return build_fast_rcnn(cfg, num_classes, class_weights)


def build_rcnn(cfg, num_classes: int, class_weights: list[float] | None = None) -> RegionCNN:
    if cfg.proposals.source == "rpn":
        raise ValueError("model.arch 'rcnn' reads precomputed proposals: set model.proposals.source "
                         "to 'selective_search' or 'file'")
    if len(cfg.roi.in_features) != 1:
        raise ValueError("model.arch 'rcnn' pools one backbone feature per region: set model.roi.in_features to one")
    backbone = build_backbone(cfg.backbone)
    feature, spec = cfg.roi.in_features[0], backbone.output_spec()
    if feature not in spec:
        raise ValueError(f"model.roi.in_features names '{feature}', but the backbone gives {list(spec)}")
    roi_heads = build_roi_heads(cfg.roi, spec, num_classes, RegionVectors(spec[feature].channels), class_weights)
    return RegionCNN(backbone, roi_heads, cfg.pixel_mean, cfg.pixel_std, feature=feature,
                     warp_size=cfg.rcnn.warp_size, context_padding=cfg.rcnn.context_padding,
                     chunk_size=cfg.rcnn.chunk_size)


# ---------------------------------------------------------------- semantic segmentation

FCN_SKIPS = {"32s": 1, "16s": 2, "8s": 3}  # the maps of model.fcn.in_features (deepest first) each variant reads


def _fcn_skip_head(cfg, spec: dict[str, FeatureSpec], num_classes: int) -> FCNSkipHead:
    return FCNSkipHead(spec, list(cfg.in_features[: FCN_SKIPS[cfg.variant]]), num_classes, fc_dims=list(cfg.fc_dims),
                       fc_kernel=cfg.fc_kernel, dropout=cfg.dropout,
                       learn_final_upsampling=cfg.learn_final_upsampling,
                       hard_pixel_fraction=cfg.hard_pixel_fraction)


def _fcn_interpolation_head(cfg, spec: dict[str, FeatureSpec], num_classes: int) -> InterpolationHead:
    return InterpolationHead(cfg.in_features[0], spec, num_classes)


FCN_HEADS = {**{variant: _fcn_skip_head for variant in FCN_SKIPS}, "torchvision": _fcn_interpolation_head}


def build_fcn(cfg, num_classes: int) -> Segmentor:
    """FCN-32s/16s/8s (Long et al.) or torchvision's FCN (``model.fcn.variant``), on any backbone."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    if neck is not None:
        raise ValueError("model.arch 'fcn' reads the backbone directly: set model.neck.name to 'none'")
    fcn = cfg.fcn
    make_head = choose(FCN_HEADS, "model.fcn.variant", fcn.variant)
    reads = FCN_SKIPS.get(fcn.variant, 1)
    if len(fcn.in_features) < reads:
        raise ValueError(f"model.fcn.variant '{fcn.variant}' reads {reads} maps, "
                         f"model.fcn.in_features names {fcn.in_features}")
    _check_features("model.fcn.in_features", fcn.in_features[:reads], spec)
    if fcn.aux_loss:
        _check_features("model.fcn.aux_in_feature", [fcn.aux_in_feature], spec)
    backbone.compute_only(fcn.in_features[:reads] + ([fcn.aux_in_feature] if fcn.aux_loss else []))
    head = make_head(fcn, spec, num_classes)
    aux = InterpolationHead(fcn.aux_in_feature, spec, num_classes, "aux", fcn.aux_weight) if fcn.aux_loss else None
    return Segmentor(backbone, head, aux, cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


def build_unet(cfg, num_classes: int) -> Segmentor:
    """U-Net: the backbone as the contracting path, a decoder with skips at every stride it names."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    if neck is not None:
        raise ValueError("model.arch 'unet' reads the backbone directly: set model.neck.name to 'none'")
    _check_features("model.unet.in_features", cfg.unet.in_features, spec)
    backbone.compute_only(list(cfg.unet.in_features))
    head = UNetHead(spec, list(cfg.unet.in_features), list(cfg.unet.channels), num_classes)
    return Segmentor(backbone, head, None, cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


# ---------------------------------------------------------------- one-stage detectors


def build_yolo(cfg, num_classes: int, class_weights: list[float] | None = None) -> OneStageDetector:
    """YOLO v1 on one feature map of any backbone (or neck)."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    yolo = cfg.yolo
    _check_features("model.yolo.in_feature", [yolo.in_feature], spec)
    if neck is None:
        backbone.compute_only([yolo.in_feature])
    head = YOLOHead(spec, yolo.in_feature, num_classes, grid_size=yolo.grid_size, boxes_per_cell=yolo.boxes_per_cell,
                    conv_dims=list(yolo.conv_dims), fc_dim=yolo.fc_dim, dropout=yolo.dropout,
                    lambda_coord=yolo.lambda_coord, lambda_noobj=yolo.lambda_noobj, score_thresh=yolo.score_thresh,
                    nms_thresh=yolo.nms_thresh, detections_per_image=yolo.detections_per_image,
                    class_weights=class_weights)
    return OneStageDetector(backbone, neck, head, cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


def _default_boxes(cfg) -> DefaultBoxes:
    """cfg: ``model.ssd``."""
    if not cfg.scales and "auto" in (cfg.min_scale, cfg.max_scale):
        raise ValueError("model.ssd.min_scale / max_scale are 'auto': they are derived from the training set "
                         "when training starts and stored in the run's config.yaml; build from that config")
    scales = cfg.scales or linear_scales(len(cfg.in_features), cfg.min_scale, cfg.max_scale)
    return DefaultBoxes(cfg.aspect_ratios, scales, cfg.steps, cfg.clip_default_boxes)


def build_ssd_head(cfg, spec: dict[str, FeatureSpec], num_classes: int,
                   class_weights: list[float] | None = None) -> SSDHead:
    """cfg: ``model.ssd``."""
    if len(cfg.aspect_ratios) != len(cfg.in_features):
        raise ValueError(f"model.ssd.aspect_ratios has {len(cfg.aspect_ratios)} lists for "
                         f"{len(cfg.in_features)} maps in model.ssd.in_features")
    predictor = choose(SSD_PREDICTORS, "model.ssd.head", cfg.head)
    return SSDHead(spec, list(cfg.in_features), num_classes, default_boxes=_default_boxes(cfg), predictor=predictor,
                   xavier_init=cfg.head == "conv",  # Caffe SSD's plain predictors
                   bbox_reg_weights=list(cfg.bbox_reg_weights), iou_thresh=cfg.iou_thresh,
                   neg_pos_ratio=cfg.neg_pos_ratio, score_thresh=cfg.score_thresh, nms_thresh=cfg.nms_thresh,
                   topk_candidates=cfg.topk_candidates, detections_per_image=cfg.detections_per_image,
                   class_weights=class_weights)


def build_ssd(cfg, num_classes: int, class_weights: list[float] | None = None) -> OneStageDetector:
    """SSD / SSDlite: usually a backbone plus the "ssd" neck (L2Norm, extra layers)."""
    backbone, neck, spec = _backbone_and_neck(cfg)
    _check_features("model.ssd.in_features", cfg.ssd.in_features, spec)
    return OneStageDetector(backbone, neck, build_ssd_head(cfg.ssd, spec, num_classes, class_weights),
                            cfg.pixel_mean, cfg.pixel_std, cfg.size_divisibility)


# ---------------------------------------------------------------- classification and the entry point


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
    "fcn": build_fcn, "unet": build_unet, "yolo": build_yolo, "ssd": build_ssd, "classifier": build_classifier,
}


# the architectures whose classification loss takes class_weights (semantic and image classification do not)
CLASS_WEIGHTED = ("faster_rcnn", "mask_rcnn", "fast_rcnn", "sppnet", "rcnn", "yolo", "ssd")


def trains_on_masks(model_cfg) -> bool:
    """Whether training samples must carry instance masks (the dataset is built with them)."""
    return model_cfg.arch == "mask_rcnn"


def build_model(model_cfg, num_classes: int | None = None, class_weights: list[float] | None = None):
    num_classes = num_classes if num_classes is not None else model_cfg.num_classes
    if num_classes is None:
        raise ValueError("model.num_classes is not set and no training set was given to count categories")
    if model_cfg.roi.spp_test_scales and model_cfg.arch != "sppnet":
        raise ValueError("model.roi.spp_test_scales is SPPnet's multi-scale test: it needs model.arch 'sppnet'")
    make = choose(ARCHITECTURES, "model.arch", model_cfg.arch)
    if class_weights is None:
        return keep_inference_weights(make(model_cfg, num_classes))
    if model_cfg.arch not in CLASS_WEIGHTED:
        raise ValueError(f"solver.class_weights weighs the detection losses; model.arch '{model_cfg.arch}' takes none")
    if len(class_weights) != num_classes:
        raise ValueError(f"solver.class_weights_values has {len(class_weights)} values for {num_classes} classes")
    return keep_inference_weights(make(model_cfg, num_classes, list(class_weights)))

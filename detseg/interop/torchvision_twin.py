"""torchvision's FasterRCNN or SSD configured like a detseg config, for side-by-side benchmarks."""
from __future__ import annotations


def torchvision_twin(model_cfg, num_classes: int, size: int):
    """The same backbone, FPN, anchors and head sizes in torchvision, or None when it has no twin."""
    import torchvision
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import MultiScaleRoIAlign

    from detseg.models.backbones.base import norm_layer_factory

    if model_cfg.arch == "ssd":
        return _ssd_twin(model_cfg, num_classes)
    if model_cfg.arch == "fcn":
        return _fcn_twin(model_cfg, num_classes)
    bb = model_cfg.backbone
    if model_cfg.arch not in ("faster_rcnn", "mask_rcnn") or not bb.name.startswith("resnet") or bb.width != 1.0:
        return None
    if model_cfg.neck.name != "fpn" or model_cfg.roi.head_conv_dims or len(model_cfg.roi.head_fc_dims) != 2:
        return None
    body = getattr(torchvision.models, bb.name)(weights=None, norm_layer=norm_layer_factory(bb.norm))
    backbone = _resnet_fpn_extractor(body, trainable_layers=max(0, 5 - bb.freeze_at))
    rpn, roi = model_cfg.rpn, model_cfg.roi
    anchors = AnchorGenerator(tuple(tuple(s) for s in rpn.anchor_sizes), (tuple(rpn.aspect_ratios),) * len(rpn.anchor_sizes))
    names = [str(i) for i in range(len(roi.in_features))]
    detector, extra = FasterRCNN, {}
    if model_cfg.arch == "mask_rcnn":
        from torchvision.models.detection import MaskRCNN
        from torchvision.models.detection.mask_rcnn import MaskRCNNHeads

        mask = model_cfg.mask
        in_channels = model_cfg.neck.out_channels
        detector = MaskRCNN
        extra = {"mask_roi_pool": MultiScaleRoIAlign(names, mask.pooler_resolution, mask.sampling_ratio),
                 "mask_head": MaskRCNNHeads(in_channels, list(mask.conv_dims), 1)}
    return detector(
        backbone, num_classes=num_classes + 1, min_size=size, max_size=size, **extra,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(names, roi.pooler_resolution, roi.sampling_ratio),
        rpn_pre_nms_top_n_train=rpn.pre_nms_topk_train, rpn_pre_nms_top_n_test=rpn.pre_nms_topk_test,
        rpn_post_nms_top_n_train=rpn.post_nms_topk_train, rpn_post_nms_top_n_test=rpn.post_nms_topk_test,
        rpn_batch_size_per_image=rpn.batch_size_per_image, box_batch_size_per_image=roi.batch_size_per_image,
        box_score_thresh=roi.score_thresh, box_detections_per_img=roi.detections_per_image,
    )


_SSD_TWINS = {"vgg16_ssd": "ssd300_vgg16", "mobilenet_v3_large_ssdlite": "ssdlite320_mobilenet_v3_large"}


def _ssd_twin(model_cfg, num_classes: int):
    """torchvision's SSD300 / SSDlite320 for the configs that equal them (they resize to 300 / 320 inside)."""
    import torchvision

    name = _SSD_TWINS.get(model_cfg.backbone.name)
    if name is None:
        return None
    model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None, num_classes=num_classes + 1)
    if name == "ssd300_vgg16":
        # without backbone weights torchvision trains every layer (and ignores trainable_backbone_layers):
        # freeze what the config freezes, or the twin would train layers detseg does not
        _freeze_vgg_stages(model.backbone.features, model_cfg.backbone.freeze_at)
    return model


def _freeze_vgg_stages(features, stages: int) -> None:
    """requires_grad off for the first ``stages`` VGG stages, each ending at a MaxPool (detseg's freeze_at)."""
    import torch.nn as nn

    pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    end = pools[stages - 1] if 0 < stages <= len(pools) else (len(features) if stages > 0 else 0)
    for parameter in features[:end].parameters():
        parameter.requires_grad_(False)


def _fcn_twin(model_cfg, num_classes: int):
    """torchvision's fcn_resnet50 for the "torchvision" FCN variant on a dilated ResNet-50."""
    from torchvision.models.segmentation import fcn_resnet50

    bb = model_cfg.backbone
    if model_cfg.fcn.variant != "torchvision" or bb.name != "resnet50" or bb.width != 1.0:
        return None
    return fcn_resnet50(weights=None, weights_backbone=None, num_classes=num_classes + 1,
                        aux_loss=model_cfg.fcn.aux_loss)

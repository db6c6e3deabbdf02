"""torchvision's FasterRCNN configured like a detseg config, for side-by-side benchmarks."""
from __future__ import annotations


def torchvision_twin(model_cfg, num_classes: int, size: int):
    """The same backbone, FPN, anchors and head sizes in torchvision, or None when it has no twin."""
    import torchvision
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import MultiScaleRoIAlign

    from detseg.models.backbones.base import norm_layer_factory

    bb = model_cfg.backbone
    if model_cfg.arch != "faster_rcnn" or not bb.name.startswith("resnet") or bb.width != 1.0:
        return None
    if model_cfg.neck.name != "fpn" or model_cfg.roi.head_conv_dims or len(model_cfg.roi.head_fc_dims) != 2:
        return None
    body = getattr(torchvision.models, bb.name)(weights=None, norm_layer=norm_layer_factory(bb.norm))
    backbone = _resnet_fpn_extractor(body, trainable_layers=max(0, 5 - bb.freeze_at))
    rpn, roi = model_cfg.rpn, model_cfg.roi
    anchors = AnchorGenerator(tuple(tuple(s) for s in rpn.anchor_sizes), (tuple(rpn.aspect_ratios),) * len(rpn.anchor_sizes))
    names = [str(i) for i in range(len(roi.in_features))]
    return FasterRCNN(
        backbone, num_classes=num_classes + 1, min_size=size, max_size=size,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(names, roi.pooler_resolution, roi.sampling_ratio),
        rpn_pre_nms_top_n_train=rpn.pre_nms_topk_train, rpn_pre_nms_top_n_test=rpn.pre_nms_topk_test,
        rpn_post_nms_top_n_train=rpn.post_nms_topk_train, rpn_post_nms_top_n_test=rpn.post_nms_topk_test,
        rpn_batch_size_per_image=rpn.batch_size_per_image, box_batch_size_per_image=roi.batch_size_per_image,
        box_score_thresh=roi.score_thresh, box_detections_per_img=roi.detections_per_image,
    )

"""Convert torchvision detection state dicts to detseg's module names.

detseg's modules mirror torchvision's layer shapes, so conversion is a key
rename; a shape or key mismatch is reported, never silently dropped.
"""
from __future__ import annotations

import re

import torch

# (torchvision key pattern, detseg replacement: a string or a function of the match), first match wins
_FASTER_RCNN_RULES = [
    (r"^backbone\.body\.", "backbone."),
    (r"^backbone\.fpn\.", "neck.fpn."),
    (r"^rpn\.head\.", "proposal_generator.head."),
    (r"^roi_heads\.box_head\.fc6\.", "roi_heads.box_head.fcs.0."),
    (r"^roi_heads\.box_head\.fc7\.", "roi_heads.box_head.fcs.1."),
    (r"^roi_heads\.box_predictor\.", "roi_heads.box_predictor."),
]

# torchvision's FCNHead is Sequential(conv, bn, relu, dropout, conv): detseg keeps 0..3 as ``block``
_FCN_RULES = [
    (r"^backbone\.", "backbone."),
    (r"^classifier\.4\.", "head.score."),
    (r"^classifier\.", "head.block."),
    (r"^aux_classifier\.4\.", "aux_head.score."),
    (r"^aux_classifier\.", "aux_head.block."),
]

def _shift(prefix: str, offset: int):
    """A replacement renumbering the matched index by ``offset`` (torchvision splits some Sequentials)."""
    return lambda match: f"{prefix}{int(match.group(1)) + offset}."


_SSD_HEAD_RULES = [
    (r"^head\.classification_head\.module_list\.", "head.cls_convs."),
    (r"^head\.regression_head\.module_list\.", "head.box_convs."),
]

# torchvision's SSD300 backbone: ``features`` is VGG-16 through conv4_3; ``extra.0`` holds pool4..conv5_3
# (VGG indices 23..29, which detseg keeps in backbone.features) and at index 7 pool5/fc6/fc7 (backbone.fc);
# ``extra.1..4`` are the extra layers, detseg's SSD neck; ``scale_weight`` is conv4_3's L2Norm.
_SSD300_VGG16_RULES = [
    (r"^backbone\.features\.", "backbone.features."),
    (r"^backbone\.scale_weight$", "neck.l2norm.weight"),
    (r"^backbone\.extra\.0\.7\.", "backbone.fc."),
    (r"^backbone\.extra\.0\.(\d+)\.", _shift("backbone.features.", 23)),
    (r"^backbone\.extra\.(\d+)\.", _shift("neck.extras.", -1)),
    *_SSD_HEAD_RULES,
]

# torchvision's SSDlite cuts MobileNetV3-Large inside block 13 (the first stride-32 block):
# ``features.0`` = blocks 0..12 + block 13's expansion layer, ``features.1`` = the rest of block 13
# (its own keys kept) and blocks 14..16. detseg keeps torchvision's MobileNetV3 indices.
_SSDLITE_MOBILENET_V3_RULES = [
    (r"^backbone\.features\.0\.13\.", "backbone.features.13.block.0."),
    (r"^backbone\.features\.0\.", "backbone.features."),
    (r"^backbone\.features\.1\.0\.", "backbone.features.13.block."),
    (r"^backbone\.features\.1\.(\d+)\.", _shift("backbone.features.", 13)),
    (r"^backbone\.extra\.", "neck.extras."),
    *_SSD_HEAD_RULES,
]

# torchvision's mask head is four Conv2dNormActivation blocks (conv at .0); detseg's is one Sequential
# of conv, relu pairs, so conv i sits at index 2 i.
_MASK_RCNN_RULES = [
    *_FASTER_RCNN_RULES,
    (r"^roi_heads\.mask_head\.(\d+)\.0\.", lambda m: f"roi_heads.mask_head.convs.{2 * int(m.group(1))}."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_heads.mask_head.upsample."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_heads.mask_head.logits."),
]

RULES = {"fasterrcnn_resnet50_fpn": _FASTER_RCNN_RULES, "maskrcnn_resnet50_fpn": _MASK_RCNN_RULES,
         "fcn_resnet50": _FCN_RULES,
         "ssd300_vgg16": _SSD300_VGG16_RULES, "ssdlite320_mobilenet_v3_large": _SSDLITE_MOBILENET_V3_RULES}

# The detseg config each architecture converts into.
CONFIGS = {
    "fasterrcnn_resnet50_fpn": "configs/faster_rcnn/coco_r50_fpn_1x.yaml",
    "maskrcnn_resnet50_fpn": "configs/mask_rcnn/coco_r50_fpn_1x.yaml",
    "fcn_resnet50": "configs/fcn/coco_r50.yaml",
}
CONFIGS["ssd300_vgg16"] = "configs/ssd/coco_ssd300_vgg16.yaml"
CONFIGS["ssdlite320_mobilenet_v3_large"] = "configs/ssd/coco_ssdlite320_mobilenet_v3.yaml"


def torchvision_class_names(arch: str, num_classes: int) -> list[str]:
    """The names torchvision's weight metadata gives the classes: label i is its category i + 1 (COCO's
    91-id space, "N/A" for the ids COCO leaves unused; VOC's 20 for the segmentation models)."""
    from torchvision.models import get_model_weights

    categories = get_model_weights(arch).DEFAULT.meta["categories"]
    return [str(name) for name in categories[1:1 + num_classes]]


def convert_state_dict(arch: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if arch not in RULES:
        raise ValueError(f"--arch '{arch}' is not supported (supported: {', '.join(RULES)})")
    converted = {}
    for key, value in state.items():
        for pattern, replacement in RULES[arch]:
            if re.match(pattern, key):
                converted[re.sub(pattern, replacement, key)] = value
                break
        else:
            raise ValueError(f"torchvision key '{key}' has no detseg counterpart for {arch}")
    return converted


def load_converted(model: torch.nn.Module, converted: dict[str, torch.Tensor]) -> None:
    """Strict load that names what differs; FrozenBatchNorm buffers count as state too."""
    expected = model.state_dict()
    # torchvision keeps BatchNorm counters that FrozenBatchNorm2d has no use for
    converted = {k: v for k, v in converted.items() if k in expected or not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = [k for k in converted if k in expected and expected[k].shape != converted[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatch {[(k, tuple(converted[k].shape), tuple(expected[k].shape)) for k in wrong[:5]]}"
        )
    model.load_state_dict(converted)

"""Convert torchvision detection state dicts to detseg's module names.

detseg's modules mirror torchvision's layer shapes, so conversion is a key
rename; a shape or key mismatch is reported, never silently dropped.
"""
from __future__ import annotations

import re

import torch

# (torchvision key pattern, detseg replacement), applied first match wins
_FASTER_RCNN_RULES = [
    (r"^backbone\.body\.", "backbone."),
    (r"^backbone\.fpn\.", "neck.fpn."),
    (r"^rpn\.head\.", "rpn.head."),
    (r"^roi_heads\.box_head\.fc6\.", "roi_heads.box_head.fcs.0."),
    (r"^roi_heads\.box_head\.fc7\.", "roi_heads.box_head.fcs.1."),
    (r"^roi_heads\.box_predictor\.", "roi_heads.box_predictor."),
]

RULES = {"fasterrcnn_resnet50_fpn": _FASTER_RCNN_RULES}

# The detseg config each architecture converts into.
CONFIGS = {"fasterrcnn_resnet50_fpn": "configs/faster_rcnn/coco_r50_fpn_1x.yaml"}


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

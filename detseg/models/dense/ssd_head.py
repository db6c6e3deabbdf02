"""SSD's head: per map, 3x3 predictors of class scores and box offsets for every default box."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from detseg.models.layers.features import FeatureSpec
from detseg.models.dense.default_boxes import DefaultBoxes, linear_scales
from detseg.models.dense.postprocess import select_detections
from detseg.models.dense.ssd_loss import ssd_losses
from detseg.models.dense.targets import padded_targets
from detseg.models.layers.box_coder import BoxCoder
from detseg.models.layers.postprocess import clip_to_image_sizes
from detseg.models.layers.init import init_ssd_convs
from detseg.structures import Batch, Instances


class SSDHead(nn.Module):
    """Class logits (0 = background) and (dx, dy, dw, dh) offsets for every default box of every map;
    the default boxes come with the raw outputs, so loss and predict need nothing else."""

    def __init__(self, cfg, in_spec: dict[str, FeatureSpec], num_classes: int):
        super().__init__()
        if len(cfg.aspect_ratios) != len(cfg.in_features):
            raise ValueError(f"model.ssd.aspect_ratios has {len(cfg.aspect_ratios)} lists for "
                             f"{len(cfg.in_features)} maps in model.ssd.in_features")
        if cfg.head not in _PREDICTORS:
            raise ValueError(f"model.ssd.head must be one of {list(_PREDICTORS)}, got '{cfg.head}'")
        self.cfg = cfg
        self.in_features = list(cfg.in_features)
        self.num_classes = num_classes
        if not cfg.scales and "auto" in (cfg.min_scale, cfg.max_scale):
            raise ValueError("model.ssd.min_scale / max_scale are 'auto': they are derived from the training set "
                             "when training starts and stored in the run's config.yaml; build from that config")
        scales = cfg.scales or linear_scales(len(cfg.in_features), cfg.min_scale, cfg.max_scale)
        self.default_boxes = DefaultBoxes(cfg.aspect_ratios, scales, cfg.steps, cfg.clip_default_boxes)
        channels = [in_spec[k].channels for k in self.in_features]
        boxes = self.default_boxes.num_per_cell()
        make = _PREDICTORS[cfg.head]
        self.cls_convs = nn.ModuleList(make(c, a * (num_classes + 1)) for c, a in zip(channels, boxes))
        self.box_convs = nn.ModuleList(make(c, a * 4) for c, a in zip(channels, boxes))
        init_ssd_convs(self, plain=cfg.head == "conv")
        self.box_coder = BoxCoder(cfg.bbox_reg_weights)
        self.score_thresh = cfg.score_thresh

    def forward(self, features: dict[str, Tensor], input_hw: tuple[int, int]) -> dict[str, Tensor]:
        """cls_logits [B, N, K+1], box_deltas [B, N, 4] and the N default boxes, in one order."""
        maps = [features[k] for k in self.in_features]
        return {
            "cls_logits": _flatten([conv(x) for conv, x in zip(self.cls_convs, maps)], self.num_classes + 1),
            "box_deltas": _flatten([conv(x) for conv, x in zip(self.box_convs, maps)], 4),
            "default_boxes": self.default_boxes([tuple(x.shape[-2:]) for x in maps], tuple(input_hw), maps[0].device),
        }

    def loss(self, raw: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        gt, gt_valid, gt_labels = padded_targets(batch)
        return ssd_losses(raw["cls_logits"], raw["box_deltas"], raw["default_boxes"], gt, gt_valid, gt_labels,
                          self.box_coder, self.cfg.iou_thresh, self.cfg.neg_pos_ratio)

    @torch.no_grad()
    def predict(self, raw: dict[str, Tensor], batch: Batch) -> list[Instances]:
        boxes, scores = self.boxes_and_scores(raw, batch.image_sizes)
        return select_detections(boxes, scores, batch, self.score_thresh, self.cfg.nms_thresh,
                                 self.cfg.topk_candidates, self.cfg.detections_per_image)

    def boxes_and_scores(self, raw: dict[str, Tensor], image_sizes) -> tuple[Tensor, Tensor]:
        """Decoded boxes [B, N, 4] clipped to each image, class scores [B, N, K] (also the ONNX graph's)."""
        boxes = self.box_coder.decode(raw["box_deltas"], raw["default_boxes"]).squeeze(-2)
        boxes = clip_to_image_sizes(boxes, torch.arange(len(boxes), device=boxes.device), image_sizes)
        return boxes, F.softmax(raw["cls_logits"], dim=-1)[..., 1:]


def _flatten(outputs: list[Tensor], columns: int) -> Tensor:
    """Per map [B, A * columns, H, W] -> [B, H * W * A, columns], concatenated over maps (cell-major, then box)."""
    flat = []
    for out in outputs:
        b, _, h, w = out.shape
        flat.append(out.view(b, -1, columns, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, columns))
    return torch.cat(flat, dim=1)


def conv_predictor(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


def lite_predictor(in_channels: int, out_channels: int) -> nn.Module:
    """SSDlite: depthwise 3x3 with BN and ReLU6, then a 1x1 convolution."""
    return nn.Sequential(
        Conv2dNormActivation(in_channels, in_channels, kernel_size=3, groups=in_channels,
                             norm_layer=lambda c: nn.BatchNorm2d(c, eps=0.001, momentum=0.03),
                             activation_layer=nn.ReLU6),
        nn.Conv2d(in_channels, out_channels, kernel_size=1),
    )


_PREDICTORS = {"conv": conv_predictor, "lite": lite_predictor}

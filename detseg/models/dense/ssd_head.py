"""SSD's head: per map, 3x3 predictors of class scores and box offsets for every default box."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from detseg.models.dense.default_boxes import DefaultBoxes
from detseg.models.dense.ssd_loss import ssd_losses
from detseg.models.layers.box_coder import BoxCoder
from detseg.models.layers.features import FeatureSpec
from detseg.models.layers.init import init_ssd_convs
from detseg.models.layers.postprocess import clip_to_image_sizes, select_detections, top_class_candidates
from detseg.models.layers.targets import padded_targets
from detseg.structures import Batch, Instances


class SSDHead(nn.Module):
    """Class logits (0 = background) and (dx, dy, dw, dh) offsets for every default box of every map;
    the default boxes come with the raw outputs, so loss and predict need nothing else.

    ``predictor(in_channels, out_channels)`` makes each map's predictor (SSD_PREDICTORS);
    ``xavier_init``: Caffe SSD's initialisation, else SSDlite's N(0, 0.03); ``class_weights``: one per
    class for the confidence loss (background weighs 1), None: unweighted."""

    def __init__(self, in_spec: dict[str, FeatureSpec], in_features: list[str], num_classes: int, *,
                 default_boxes: DefaultBoxes, predictor: Callable[[int, int], nn.Module], xavier_init: bool,
                 bbox_reg_weights: list[float], iou_thresh: float, neg_pos_ratio: float, score_thresh: float,
                 nms_thresh: float, topk_candidates: int, detections_per_image: int,
                 class_weights: list[float] | None = None):
        super().__init__()
        self.in_features = list(in_features)
        self.num_classes = num_classes
        self.default_boxes = default_boxes
        channels = [in_spec[k].channels for k in self.in_features]
        boxes = self.default_boxes.num_per_cell()
        self.cls_convs = nn.ModuleList(predictor(c, a * (num_classes + 1)) for c, a in zip(channels, boxes))
        self.box_convs = nn.ModuleList(predictor(c, a * 4) for c, a in zip(channels, boxes))
        init_ssd_convs(self, plain=xavier_init)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.iou_thresh, self.neg_pos_ratio = iou_thresh, neg_pos_ratio
        self.score_thresh = score_thresh  # detseg.app.pipeline.apply_test_overrides sets it
        self.nms_thresh, self.topk_candidates, self.detections_per_image = nms_thresh, topk_candidates, detections_per_image
        self.register_buffer("cls_loss_weight", None if class_weights is None else  # a loss setting, not saved
                             torch.tensor([1.0, *class_weights], dtype=torch.float32), persistent=False)

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
                          self.box_coder, self.iou_thresh, self.neg_pos_ratio, self.cls_loss_weight)

    @torch.no_grad()
    def predict(self, raw: dict[str, Tensor], image_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Per-image detections in the network input's pixels."""
        boxes, scores = self.boxes_and_scores(raw, image_sizes)
        return select_detections(top_class_candidates(boxes, scores, self.topk_candidates), len(image_sizes),
                                 self.num_classes, self.score_thresh, self.nms_thresh, self.detections_per_image)

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


SSD_PREDICTORS = {"conv": conv_predictor, "lite": lite_predictor}

"""SSD's training objective: matching, hard negative mining and the MultiBox loss, batched."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detseg.models.layers.box_coder import BoxCoder
from detseg.structures.boxes import batched_pairwise_iou


def match_default_boxes(default_boxes: Tensor, gt: Tensor, gt_valid: Tensor, iou_thresh: float) -> Tensor:
    """Index of the matched ground truth per default box [B, N], -1 for background.

    Each ground-truth box first takes the default box it overlaps best (whatever the IoU), then
    every default box with IoU >= ``iou_thresh`` takes its best ground truth (Liu et al. 2.2).
    """
    iou = batched_pairwise_iou(gt, default_boxes.expand(gt.shape[0], -1, -1))  # [B, G, N]
    iou = iou.masked_fill(~gt_valid[:, :, None], -1.0)
    best_iou, matched = iou.max(dim=1)
    matched = matched.masked_fill(best_iou < iou_thresh, -1)
    images, gts = gt_valid.nonzero(as_tuple=True)
    matched[images, iou.argmax(dim=2)[images, gts]] = gts
    return matched


def hard_negative_mask(cls_loss: Tensor, positive: Tensor, neg_pos_ratio: float) -> Tensor:
    """Per image, the ``neg_pos_ratio`` x positives negatives with the highest loss [B, N] (bool).

    An image without positives contributes no negatives (as torchvision's SSD).
    """
    num_negative = neg_pos_ratio * positive.sum(dim=1, keepdim=True)
    loss = cls_loss.detach().masked_fill(positive, -float("inf"))
    rank = loss.argsort(dim=1, descending=True).argsort(dim=1)
    return rank < num_negative


def ssd_losses(cls_logits: Tensor, box_deltas: Tensor, default_boxes: Tensor, gt: Tensor, gt_valid: Tensor,
               gt_labels: Tensor, coder: BoxCoder, iou_thresh: float, neg_pos_ratio: float,
               class_weights: Tensor | None = None) -> dict[str, Tensor]:
    """cls_logits [B, N, K+1] (0 = background), box_deltas [B, N, 4]; both losses are divided by the
    batch's number of positives: softmax cross-entropy on positives and mined negatives, smooth L1 on
    the positives' offsets. ``class_weights`` [K+1] (background first) scales each default box's
    cross-entropy by its target's weight; negatives are mined on the (background, so unweighted) loss."""
    matched = match_default_boxes(default_boxes, gt, gt_valid, iou_thresh)
    positive = matched >= 0
    rows = torch.arange(len(gt), device=gt.device)[:, None]
    index = matched.clamp(min=0)
    classes = torch.where(positive, gt_labels[rows, index] + 1, 0)
    targets = coder.encode(gt[rows, index][positive], default_boxes.expand_as(box_deltas)[positive])
    box_loss = F.smooth_l1_loss(box_deltas[positive], targets, reduction="sum")
    ce = F.cross_entropy(cls_logits.flatten(0, 1), classes.flatten(), weight=class_weights,
                         reduction="none").view_as(classes)
    negative = hard_negative_mask(ce, positive, neg_pos_ratio)
    num_positive = max(1, int(positive.sum()))
    return {
        "loss_ssd_cls": (ce[positive].sum() + ce[negative].sum()) / num_positive,
        "loss_ssd_box": box_loss / num_positive,
    }

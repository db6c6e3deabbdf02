"""Batched IoU matching and balanced sampling over padded [B, N] tensors (no per-image loop)."""
from __future__ import annotations

import torch
from torch import Tensor

from detseg.structures.boxes import batched_pairwise_iou

BACKGROUND, IGNORE = 0, -1


def pad_boxes(boxes: list[Tensor], min_len: int = 1) -> tuple[Tensor, Tensor]:
    """List of [N_i, 4] -> ([B, max(N), 4] zero-padded, valid mask [B, max(N)])."""
    lengths = [len(b) for b in boxes]
    width = max(max(lengths, default=0), min_len)
    padded = boxes[0].new_zeros((len(boxes), width, 4))
    for i, b in enumerate(boxes):
        padded[i, : len(b)] = b
    valid = torch.arange(width, device=padded.device)[None, :] < torch.tensor(lengths, device=padded.device)[:, None]
    return padded, valid


def match_boxes(
    candidates: Tensor, gt: Tensor, gt_valid: Tensor, fg_thresh: float, bg_thresh: float, allow_low_quality: bool,
    bg_low: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """candidates [B, N, 4] (or [N, 4] shared), gt [B, G, 4] -> (matched gt index [B, N], label [B, N]).

    label is 1 for foreground, 0 background (best IoU in [bg_low, bg_thresh)), -1 ignored (between the
    thresholds, or below ``bg_low``: Fast R-CNN's 0.1). Images without ground truth are all background.
    ``allow_low_quality`` lets each gt keep the candidates it overlaps best (Faster R-CNN's RPN rule).
    """
    if candidates.dim() == 2:
        candidates = candidates.unsqueeze(0).expand(gt.shape[0], -1, -1)
    iou = batched_pairwise_iou(gt, candidates)  # [B, G, N]
    iou = iou.masked_fill(~gt_valid[:, :, None], -1.0)
    best_iou, matched = iou.max(dim=1)  # [B, N]
    labels = torch.full_like(matched, IGNORE)
    labels[best_iou >= fg_thresh] = 1
    labels[(best_iou < bg_thresh) & (best_iou >= bg_low)] = BACKGROUND
    labels[best_iou < 0] = BACKGROUND  # images without ground truth
    if allow_low_quality:
        best_per_gt = iou.max(dim=2, keepdim=True).values  # [B, G, 1]
        is_best = ((iou == best_per_gt) & gt_valid[:, :, None] & (best_per_gt > 0)).any(dim=1)
        labels[is_best] = 1
    return matched, labels


def sample_balanced(labels: Tensor, per_image: int, positive_fraction: float, generator=None) -> Tensor:
    """Randomly keep up to ``per_image`` of labels [B, N] with at most the given share of positives.

    Returns a bool mask [B, N]. Random keys + one sort replaces torchvision's per-image randperm.
    """
    positive = labels > 0
    negative = labels == BACKGROUND
    num_pos = positive.sum(1).clamp(max=int(per_image * positive_fraction))
    num_neg = negative.sum(1).clamp(max=per_image - num_pos)
    keys = torch.rand(labels.shape, device=labels.device, generator=generator)
    pos_rank = _rank(torch.where(positive, keys, -1.0))
    neg_rank = _rank(torch.where(negative, keys, -1.0))
    return (positive & (pos_rank < num_pos[:, None])) | (negative & (neg_rank < num_neg[:, None]))


def _rank(keys: Tensor) -> Tensor:
    """Position of each entry when its row is sorted in descending order."""
    order = keys.argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(keys.shape[1], device=keys.device).expand_as(order))
    return ranks

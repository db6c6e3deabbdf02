"""Post-processing of every model: detections selected in the network input, then mapped to the original image.

Heads answer in the network input's pixels (the padded batch image; boxes clipped to each image's
``batch.image_sizes``). Detection heads turn their candidates into flat (box, score, label, image)
rows and call ``select_detections``: per-class score threshold, NMS per (image, class), the best k
per image, each one op for the whole batch. The meta-architecture then maps every prediction to the
original image once (``batch.orig_sizes``): ``instances_to_original`` for detections,
``label_map_to_original`` for semantic logits.

In the network input, ``Instances.masks`` (when a head fills it) holds each detection's M x M mask
probabilities over its box; ``instances_to_original`` pastes them into the original image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detseg.models.layers.mask_paste import paste_masks
from detseg.models.layers.threaded_nms import batched_nms
from detseg.structures import Instances
from detseg.structures.boxes import scale_boxes


def clip_to_image_sizes(boxes: Tensor, image_idx: Tensor, image_sizes: list[tuple[int, int]]) -> Tensor:
    """boxes [N, ..., 4] clipped to the (h, w) of the image each row belongs to."""
    limits = boxes.new_tensor([[w, h, w, h] for h, w in image_sizes])[image_idx]
    limits = limits.view(limits.shape[0], *([1] * (boxes.dim() - 2)), 4)
    return torch.minimum(boxes.clamp(min=0), limits)


def top_k_per_image(image_idx: Tensor, num_images: int, k: int) -> tuple[Tensor, list[int]]:
    """Entries arrive sorted by score; return indices of each image's first k (image-major) and counts."""
    order = torch.sort(image_idx, stable=True).indices
    sorted_idx = image_idx[order]
    counts = torch.bincount(sorted_idx, minlength=num_images)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(sorted_idx), device=image_idx.device) - starts[sorted_idx]
    return order[rank < k], counts.clamp(max=k).tolist()


def class_box_candidates(boxes: Tensor, scores: Tensor, image_idx: Tensor) -> tuple[Tensor, ...]:
    """Class-specific boxes [R, K, 4] and scores [R, K] of RoIs from images ``image_idx`` [R] -> flat
    (boxes, scores, labels, image_idx) rows, one per (RoI, class), RoI-major."""
    num_rois, num_classes = scores.shape
    labels = torch.arange(num_classes, device=scores.device).expand(num_rois, -1).reshape(-1)
    image_idx = image_idx[:, None].expand(-1, num_classes).reshape(-1)
    return boxes.reshape(-1, 4), scores.reshape(-1), labels, image_idx


def top_class_candidates(boxes: Tensor, scores: Tensor, k: int) -> tuple[Tensor, ...]:
    """Shared boxes [B, N, 4] and class scores [B, N, K] -> flat (boxes, scores, labels, image_idx) rows of
    each image's and class's k best-scoring boxes, image-major, then class (torchvision's SSD rule)."""
    num_images, num_boxes, num_classes = scores.shape
    top_scores, top_idx = scores.transpose(1, 2).topk(min(k, num_boxes), dim=2)  # [B, K, k]
    image_idx = torch.arange(num_images, device=scores.device)[:, None, None].expand_as(top_idx).reshape(-1)
    labels = torch.arange(num_classes, device=scores.device)[None, :, None].expand_as(top_idx).reshape(-1)
    return boxes[image_idx, top_idx.reshape(-1)], top_scores.reshape(-1), labels, image_idx


def kept_by_nms(boxes: Tensor, scores: Tensor, groups: Tensor, score_thresh: float, nms_thresh: float,
                min_box_side: float = 0.0) -> Tensor:
    """Indices of the rows scoring above ``score_thresh`` (both sides >= ``min_box_side`` when that is
    positive) that survive NMS within their group, best first. Traceable: the export graphs use it."""
    keep = scores > score_thresh
    if min_box_side > 0:
        keep = keep & ((boxes[:, 2:] - boxes[:, :2]) >= min_box_side).all(dim=1)
    keep = torch.where(keep)[0]
    return keep[batched_nms(boxes[keep], scores[keep], groups[keep], nms_thresh)]


def select_detections(candidates: tuple[Tensor, ...], num_images: int, num_classes: int, score_thresh: float,
                      nms_thresh: float, detections_per_image: int, min_box_side: float = 0.0) -> list[Instances]:
    """Flat (boxes, scores, labels, image_idx) candidates -> per-image Instances in the same pixels, best
    first: threshold, NMS per (image, class), the best ``detections_per_image`` of each image."""
    boxes, scores, labels, image_idx = candidates
    groups = image_idx * num_classes + labels
    kept = kept_by_nms(boxes, scores, groups, score_thresh, nms_thresh, min_box_side)
    top, counts = top_k_per_image(image_idx[kept], num_images, detections_per_image)
    return [Instances(boxes[idx], scores[idx], labels[idx]) for idx in kept[top].split(counts)]


def instances_to_original(instances: Instances, input_hw: tuple[int, int], orig_hw: tuple[int, int],
                          mask_threshold: float | None = 0.5) -> Instances:
    """Detections in the network input -> the original image: boxes scaled per axis; box-relative mask
    probabilities (if any) pasted at the original size, bool at ``mask_threshold`` (None: probabilities)."""
    boxes = scale_boxes(instances.boxes, tuple(input_hw), tuple(orig_hw))
    masks = instances.masks
    if masks is not None:
        masks = paste_masks(masks, boxes, tuple(orig_hw), mask_threshold)
    return Instances(boxes, instances.scores, instances.labels, masks)


def label_map_to_original(logits: Tensor, input_hw: tuple[int, int], orig_hw: tuple[int, int]) -> Tensor:
    """One image's logits [C, Hp, Wp] over the padded input -> int64 [H, W] label map of the original image
    (the padding cropped first)."""
    h, w = input_hw
    logits = logits[None, :, :h, :w]
    if (h, w) != tuple(orig_hw):
        # logits, not labels, are interpolated so class borders fall between pixels smoothly
        logits = F.interpolate(logits, size=tuple(orig_hw), mode="bilinear", align_corners=False)
    return logits[0].argmax(0)

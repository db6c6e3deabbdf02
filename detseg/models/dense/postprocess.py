"""From dense per-box class scores to per-image detections, batched over the images."""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from detseg.models.layers.postprocess import top_k_per_image
from detseg.structures import Batch, Instances
from detseg.structures.boxes import scale_boxes


def select_detections(boxes: Tensor, scores: Tensor, batch: Batch, score_thresh: float, nms_thresh: float,
                      topk_candidates: int, detections_per_image: int) -> list[Instances]:
    """boxes [B, N, 4] in input pixels, scores [B, N, K] -> Instances in original pixels.

    Per image and class: the ``topk_candidates`` best scores above ``score_thresh``; then NMS per
    class and the best ``detections_per_image`` per image (torchvision's SSD post-processing).
    """
    num_images, num_boxes, num_classes = scores.shape
    top_scores, top_idx = scores.transpose(1, 2).topk(min(topk_candidates, num_boxes), dim=2)  # [B, K, k]
    keep = top_scores > score_thresh
    image_idx = torch.arange(num_images, device=scores.device)[:, None, None].expand_as(top_idx)[keep]
    labels = torch.arange(num_classes, device=scores.device)[None, :, None].expand_as(top_idx)[keep]
    scores, box_idx = top_scores[keep], top_idx[keep]
    boxes = boxes[image_idx, box_idx]
    kept = batched_nms(boxes, scores, image_idx * num_classes + labels, nms_thresh)
    top, counts = top_k_per_image(image_idx[kept], num_images, detections_per_image)
    kept = kept[top]
    results = []
    for i, idx in enumerate(kept.split(counts)):
        out_boxes = scale_boxes(boxes[idx], batch.image_sizes[i], batch.orig_sizes[i])
        results.append(Instances(out_boxes, scores[idx], labels[idx]))
    return results

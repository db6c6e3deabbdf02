"""Detection confusion matrix: which class each ground-truth object was detected as, if at all.

Layout (that of ultralytics): ``matrix[predicted, true]`` of shape ``[K + 1, K + 1]``, index ``K``
is "background". A prediction matched to an object of another class lands off the diagonal; an
unmatched prediction is a false positive in the background *column*; an object no prediction
matched is a miss in the background *row*.

Matching is class-agnostic and one-to-one: pairs with IoU >= ``iou_thresh`` are taken greedily,
highest IoU first, among predictions scoring >= ``score_thresh``. Crowd annotations are left out
(predictions on a crowd region count as false positives).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torchvision.ops import box_iou

SCORE_THRESH = 0.25  # ultralytics' confusion-matrix confidence
IOU_THRESH = 0.5


def match_boxes(gt_boxes: torch.Tensor, pred_boxes: torch.Tensor, iou_thresh: float = IOU_THRESH
                ) -> list[tuple[int, int]]:
    """One-to-one (gt index, prediction index) pairs, greedy by IoU (xyxy boxes)."""
    if len(gt_boxes) == 0 or len(pred_boxes) == 0:
        return []
    iou = box_iou(gt_boxes.float(), pred_boxes.float())
    gt_idx, pred_idx = torch.nonzero(iou >= iou_thresh, as_tuple=True)
    order = torch.argsort(iou[gt_idx, pred_idx], descending=True, stable=True)
    used_gt, used_pred, pairs = set(), set(), []
    for g, p in zip(gt_idx[order].tolist(), pred_idx[order].tolist()):
        if g not in used_gt and p not in used_pred:
            used_gt.add(g)
            used_pred.add(p)
            pairs.append((g, p))
    return pairs


class DetectionConfusion:
    """Accumulates ``matrix[predicted, true]`` (int64, ``[K + 1, K + 1]``) over images."""

    def __init__(self, num_classes: int, score_thresh: float = SCORE_THRESH, iou_thresh: float = IOU_THRESH):
        self.num_classes, self.score_thresh, self.iou_thresh = num_classes, score_thresh, iou_thresh
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)

    def update(self, gt_boxes, gt_labels, pred_boxes, pred_labels, pred_scores) -> None:
        """One image; boxes xyxy ``[N, 4]``, labels contiguous ``0..K-1`` (tensors or arrays)."""
        gt_boxes, pred_boxes = torch.as_tensor(gt_boxes).reshape(-1, 4), torch.as_tensor(pred_boxes).reshape(-1, 4)
        gt_labels = torch.as_tensor(gt_labels).long().reshape(-1)
        pred_labels = torch.as_tensor(pred_labels).long().reshape(-1)
        keep = torch.as_tensor(pred_scores).reshape(-1) >= self.score_thresh
        pred_boxes, pred_labels = pred_boxes[keep], pred_labels[keep]
        background = self.num_classes
        pairs = match_boxes(gt_boxes, pred_boxes, self.iou_thresh)
        for g, p in pairs:
            self.matrix[pred_labels[p], gt_labels[g]] += 1
        matched_gt, matched_pred = {g for g, _ in pairs}, {p for _, p in pairs}
        for g in set(range(len(gt_labels))) - matched_gt:
            self.matrix[background, gt_labels[g]] += 1
        for p in set(range(len(pred_labels))) - matched_pred:
            self.matrix[pred_labels[p], background] += 1

    def to_dict(self, class_names: list[str]) -> dict:
        """JSON-ready: what tools/plot.py reads back (see detseg.reports.plots.plot_confusion_matrix)."""
        return {"names": [*class_names, "background"], "score_thresh": self.score_thresh,
                "iou_thresh": self.iou_thresh, "layout": "matrix[predicted][true]",
                "matrix": self.matrix.tolist()}


def confusion_from_coco(coco_gt, results: list[dict], image_ids: Iterable[int], category_ids: list[int],
                        score_thresh: float = SCORE_THRESH, iou_thresh: float = IOU_THRESH) -> DetectionConfusion:
    """The matrix of COCO-format ``results`` (xywh, file category ids) against ``coco_gt`` on ``image_ids``.

    ``category_ids[k]`` is the file id of contiguous label ``k``; ids outside it are skipped."""
    label_of = {c: k for k, c in enumerate(category_ids)}
    confusion = DetectionConfusion(len(category_ids), score_thresh, iou_thresh)
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    for image_id in image_ids:
        anns = [a for a in coco_gt.imgToAnns.get(int(image_id), [])
                if not a.get("iscrowd", 0) and a["category_id"] in label_of]
        dets = [d for d in by_image.get(int(image_id), []) if d["category_id"] in label_of]
        confusion.update(_xywh_to_xyxy([a["bbox"] for a in anns]), [label_of[a["category_id"]] for a in anns],
                         _xywh_to_xyxy([d["bbox"] for d in dets]), [label_of[d["category_id"]] for d in dets],
                         [d["score"] for d in dets])
    return confusion


def _xywh_to_xyxy(boxes: list) -> torch.Tensor:
    xyxy = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    xyxy[:, 2:] += xyxy[:, :2]
    return xyxy

"""PASCAL VOC detection AP, equal to the official devkit's ``voc_eval``.

IoU convention: the devkit works on 1-based integer boxes and adds 1 to widths
and heights. Our boxes are continuous xyxy with ``x1 = xmin - 1, x2 = xmax``
(likewise for y), so the devkit's ``xmax - xmin + 1`` is our ``x2 - x1`` and its
intersections are ours too: plain IoU here equals the devkit's IoU on integer
VOC boxes converted that way (checked in tests/evaluation/test_voc.py).

Matching follows the devkit: detections of a class are visited in descending
score order over the whole dataset; each takes the ground truth of its class
with the highest IoU (difficult and already-matched ones included). If that IoU
is ``> iou_threshold`` it is a TP when the gt is unmatched, an FP when the gt was
already matched, and neither when the gt is difficult; below the threshold it is
an FP. Difficult gts do not count as positives. Only detections of the same
image compete for a gt, so the matching is done per image, vectorised.

Differences from the devkit, on purpose: a class without positives gets AP
``nan`` and is left out of the means (the devkit divides by zero); ties in
score keep their input order (stable sort) where the devkit's quicksort is
arbitrary.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_iou

from detseg.evaluation.distributed import gather_results, is_main_process
from detseg.structures.batch import Batch
from detseg.structures.instances import Instances

# The devkit's thresholds are np.arange(0, 1.1, 0.1), whose fourth value is 0.30000000000000004,
# not 0.3; reusing them puts a recall of exactly 0.3 on the same side of the threshold as the devkit.
_VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


def voc_ap(recall, precision, use_07_metric: bool = False) -> float:
    """AP of one precision/recall curve (arrays in detection order, as fractions).

    ``use_07_metric``: VOC2007 11-point interpolation (mean of the best precision
    at recall >= 0, 0.1, ..., 1). Otherwise VOC2010+: area under the curve after
    making precision monotonically decreasing (its upper envelope).
    """
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        if rec.size == 0:
            return 0.0
        reached = rec[None, :] >= _VOC07_RECALL_THRESHOLDS[:, None]
        # precision >= 0, so 0 as the fill value gives 0 for thresholds never reached, as the devkit does
        return float(np.where(reached, prec[None, :], 0.0).max(axis=1).sum() / 11.0)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # best precision at this recall or any higher one
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def match_image(
    pred: Instances, gt_boxes: Tensor, gt_labels: Tensor, gt_difficult: Tensor, iou_threshold: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Devkit matching within one image -> (scores, labels, is_tp, is_ignored), sorted by score."""
    order = torch.sort(pred.scores, descending=True, stable=True).indices
    scores, labels, boxes = pred.scores[order], pred.labels[order].long(), pred.boxes[order]
    num_dets = len(order)
    no_flags = torch.zeros(num_dets, dtype=torch.bool)
    if num_dets == 0 or len(gt_boxes) == 0:
        return scores, labels, no_flags, no_flags
    iou = box_iou(boxes.double(), gt_boxes.double())  # float64: threshold decisions as exact as the devkit's
    iou[labels[:, None] != gt_labels[None, :]] = -1.0  # a detection only competes for gts of its class
    best_iou, best_gt = iou.max(dim=1)  # first maximum on ties, like np.argmax
    hit = best_iou > iou_threshold
    ignored = hit & gt_difficult[best_gt]
    claims = hit & ~ignored
    # A claimed gt goes to its highest-scoring claimant (the first in score order); later ones are FPs.
    position = torch.arange(num_dets)
    first = torch.full((len(gt_boxes),), num_dets).scatter_reduce(
        0, best_gt[claims], position[claims], reduce="amin"
    )
    is_tp = claims & (first[best_gt] == position)
    return scores, labels, is_tp, ignored


class VocEvaluator:
    """Accumulates per-image matches with ``process`` and turns them into AP with ``evaluate`` (an
    Evaluator, see detseg.evaluation.protocol).

    ``annotation_of(image_id)``: that image's ground truth, ``boxes`` float [N, 4] xyxy, ``labels``
    int64 [N], ``difficult`` bool [N] (tensors or arrays).
    """

    def __init__(self, class_names: list[str], annotation_of: Callable[[int], dict], iou_threshold: float = 0.5):
        self.class_names = list(class_names)
        self.annotation_of = annotation_of
        self.iou_threshold = iou_threshold
        self.reset()

    def reset(self) -> None:
        # image id -> (scores, labels, is_tp, is_ignored, positives per class); keyed so a
        # sample repeated by a distributed sampler counts once.
        self._per_image: dict[int, tuple[Tensor, ...]] = {}

    def process(self, batch: Batch, predictions: list[Instances]) -> None:
        for image_id, pred in zip(batch.image_ids, predictions, strict=True):
            gt = self.annotation_of(image_id)
            pred = Instances(pred.boxes.detach().cpu(), pred.scores.detach().cpu(), pred.labels.detach().cpu())
            labels = torch.as_tensor(gt["labels"]).long().cpu()
            difficult = torch.as_tensor(gt["difficult"]).bool().cpu()
            boxes = torch.as_tensor(gt["boxes"]).cpu()
            matches = match_image(pred, boxes, labels, difficult, self.iou_threshold)
            positives = torch.bincount(labels[~difficult], minlength=len(self.class_names))
            self._per_image[int(image_id)] = (*matches, positives)

    def evaluate(self) -> dict:
        """``{"voc": {"mAP", "mAP07", "AP-<name>", "AP07-<name>"}}`` in percent on rank 0, ``{}`` elsewhere."""
        self._per_image = dict(gather_results(list(self._per_image.items())))
        if not is_main_process():
            return {}
        aps, aps07 = self._class_aps()
        metrics = {"mAP": _nanmean(aps), "mAP07": _nanmean(aps07)}
        metrics.update({f"AP-{n}": ap for n, ap in zip(self.class_names, aps)})
        metrics.update({f"AP07-{n}": ap for n, ap in zip(self.class_names, aps07)})
        return {"voc": metrics}

    def _class_aps(self) -> tuple[list[float], list[float]]:
        num_classes = len(self.class_names)
        entries = [self._per_image[i] for i in sorted(self._per_image)]
        if not entries:
            return [math.nan] * num_classes, [math.nan] * num_classes
        scores, labels, is_tp, ignored = (torch.cat([e[k] for e in entries]) for k in range(4))
        positives = torch.stack([e[4] for e in entries]).sum(0).tolist()
        # Ignored detections stay in the curve as repeated points (no TP, no FP), as in the devkit.
        is_fp = ~is_tp & ~ignored
        aps, aps07 = [], []
        for k in range(num_classes):
            if positives[k] == 0:
                aps.append(math.nan)
                aps07.append(math.nan)
                continue
            keep = labels == k
            recall, precision = _pr_curve(scores[keep], is_tp[keep], is_fp[keep], positives[k])
            aps.append(100.0 * voc_ap(recall, precision, use_07_metric=False))
            aps07.append(100.0 * voc_ap(recall, precision, use_07_metric=True))
        return aps, aps07


def _pr_curve(scores: Tensor, is_tp: Tensor, is_fp: Tensor, num_positives: int) -> tuple[np.ndarray, np.ndarray]:
    order = torch.sort(scores, descending=True, stable=True).indices
    tp = is_tp[order].double().cumsum(0).numpy()
    fp = is_fp[order].double().cumsum(0).numpy()
    recall = tp / float(num_positives)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return recall, precision


def _nanmean(values: list[float]) -> float:
    valid = [v for v in values if not math.isnan(v)]
    return sum(valid) / len(valid) if valid else math.nan

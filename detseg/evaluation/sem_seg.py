"""Semantic segmentation metrics from a confusion matrix (the FCN paper's four numbers).

Conventions (those of detectron2's SemSegEvaluator):
- Percent. Pixels labelled 255 (ignore) in the ground truth are not counted.
- ``IoU-<class>`` is nan for a class absent from both ground truth and predictions; ``mIoU``
  averages the others. ``ACC-<class>`` (recall) is nan for classes without ground truth.
- ``fwIoU`` weights each class's IoU by its ground-truth pixel frequency; ``pACC`` is the
  fraction of labelled pixels predicted right; ``mACC`` the mean per-class accuracy.
- Distributed: ``evaluate`` sums every rank's matrix (a collective), numbers on rank 0.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from detseg.evaluation.distributed import gather_results, is_main_process
from detseg.structures.batch import Batch

IGNORE = 255


class SemSegEvaluator:
    """Accumulates a pixel confusion matrix with ``process``, scores it with ``evaluate`` (an Evaluator,
    see detseg.evaluation.protocol).

    ``label_map_of(image_id)``: that image's ground-truth label map at the predictions' size (the stored,
    full-size one), 0 = background, c + 1 = class c, ``ignore_index`` = not counted.
    """

    def __init__(self, class_names: list[str], label_map_of: Callable[[int], np.ndarray],
                 ignore_index: int = IGNORE):
        self.class_names = list(class_names)  # index 0 is background
        self.label_map_of = label_map_of
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        n = len(self.class_names)
        self.confusion = torch.zeros(n, n, dtype=torch.int64)  # [ground truth, prediction]

    def process(self, batch: Batch, predictions: list[Tensor]) -> None:
        n = len(self.class_names)
        for image_id, pred in zip(batch.image_ids, predictions, strict=True):
            gt = torch.as_tensor(np.asarray(self.label_map_of(image_id))).long()
            pred = pred.detach().to("cpu").long()
            if pred.shape != gt.shape:
                raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in size")
            keep = gt != self.ignore_index
            if (gt[keep] >= n).any() or (pred < 0).any() or (pred >= n).any():
                raise ValueError(f"labels outside 0..{n - 1} (and {self.ignore_index} in the ground truth)")
            pairs = gt[keep] * n + pred[keep]
            self.confusion += torch.bincount(pairs, minlength=n * n).view(n, n)

    def evaluate(self) -> dict[str, dict[str, float]]:
        """``{"sem_seg": {"mIoU", "fwIoU", "mACC", "pACC", "IoU-<class>"..., "ACC-<class>"...}}`` on rank 0,
        {} elsewhere."""
        matrices = gather_results([self.confusion])
        if not is_main_process():
            return {}
        return {"sem_seg": confusion_metrics(sum(matrices).double().numpy(), self.class_names)}


def confusion_metrics(confusion: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """The metrics of a [ground truth, prediction] pixel count matrix."""
    true_pos = np.diag(confusion)
    gt_pixels, pred_pixels = confusion.sum(1), confusion.sum(0)
    union = gt_pixels + pred_pixels - true_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, true_pos / union, np.nan)
        acc = np.where(gt_pixels > 0, true_pos / gt_pixels, np.nan)
    total = gt_pixels.sum()
    valid = ~np.isnan(iou)
    metrics = {
        "mIoU": _percent(np.nanmean(iou) if valid.any() else math.nan),
        "fwIoU": _percent((gt_pixels[valid] * iou[valid]).sum() / total if total else math.nan),
        "mACC": _percent(np.nanmean(acc) if (gt_pixels > 0).any() else math.nan),
        "pACC": _percent(true_pos.sum() / total if total else math.nan),
    }
    metrics.update({f"IoU-{name}": _percent(v) for name, v in zip(class_names, iou)})
    metrics.update({f"ACC-{name}": _percent(v) for name, v in zip(class_names, acc)})
    return metrics


def _percent(value: float) -> float:
    return float(value) * 100.0

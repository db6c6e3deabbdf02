"""Image classification accuracy: top-1 and top-5, in percent.

Top-5 counts an image right when its label is among the k most probable classes, k = min(5,
number of classes) (with 3 classes it is top-3, always 100). Distributed: ``evaluate`` sums
every rank's counts (a collective), numbers on rank 0.
"""
from __future__ import annotations

import torch
from torch import Tensor

from detseg.evaluation.distributed import gather_results, is_main_process
from detseg.structures.batch import Batch

TOP_K = 5


class ClassificationEvaluator:
    """Counts top-1 / top-5 hits with ``process`` (an Evaluator, see detseg.evaluation.protocol: labels
    are ``batch.class_labels``, predictions one score row [K] per image, any monotone score), then
    ``evaluate()``."""

    def __init__(self, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"need at least one class, got {num_classes}")
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.counts = torch.zeros(3, dtype=torch.int64)  # images, top-1 right, top-5 right

    def process(self, batch: Batch, predictions: Tensor | list[Tensor]) -> None:
        scores = torch.stack(list(predictions)) if isinstance(predictions, (list, tuple)) else predictions
        labels = batch.class_labels
        scores, labels = scores.detach().float().cpu(), torch.as_tensor(labels).long().cpu().view(-1)
        if scores.ndim != 2 or scores.shape != (len(labels), self.num_classes):
            raise ValueError(f"scores {tuple(scores.shape)} do not match {len(labels)} labels "
                             f"x {self.num_classes} classes")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels outside 0..{self.num_classes - 1}")
        k = min(TOP_K, self.num_classes)
        ranked = scores.topk(k, dim=1).indices
        hits = ranked == labels[:, None]
        self.counts += torch.tensor([len(labels), int(hits[:, 0].sum()), int(hits.any(dim=1).sum())])

    def evaluate(self) -> dict[str, dict[str, float]]:
        """``{"classification": {"top1", "top5", "num_images"}}`` on rank 0, {} elsewhere."""
        parts = gather_results([self.counts])  # a collective: every rank calls it
        if not is_main_process():
            return {}
        images, top1, top5 = (int(v) for v in sum(parts))
        if images == 0:
            return {"classification": {"top1": float("nan"), "top5": float("nan"), "num_images": 0}}
        return {"classification": {"top1": 100.0 * top1 / images, "top5": 100.0 * top5 / images,
                                   "num_images": images}}

"""Batches and a stand-in model for driving evaluators (detseg.evaluation.protocol) and the evaluation
loop (detseg.app.evaluate) in tests."""
from __future__ import annotations

import torch

from detseg.structures.batch import Batch


def batch_of(image_ids, class_labels=None) -> Batch:
    """A Batch of ``image_ids`` (and ``class_labels``, as given) with 1x1 placeholder images: what
    evaluators read of a batch."""
    n = len(image_ids)
    return Batch(images=torch.zeros(n, 3, 1, 1, dtype=torch.uint8), image_sizes=[(1, 1)] * n,
                 orig_sizes=[(1, 1)] * n, image_ids=list(image_ids), class_labels=class_labels)


class FakeModel(torch.nn.Module):
    """Answers each image of a batch with ``predict(image_id)``; "both" mode adds a constant loss."""

    def __init__(self, predict, task: str | None = None, loss: float = 0.5):
        super().__init__()
        self.predict, self.loss = predict, loss
        if task is not None:
            self.task = task

    def forward(self, batch, mode: str = "predict"):
        predictions = [self.predict(i) for i in batch.image_ids]
        return ({"loss_fake": torch.tensor(self.loss)}, predictions) if mode == "both" else predictions

"""Batches for driving evaluators through their protocol (detseg.evaluation.protocol) in tests."""
from __future__ import annotations

import torch

from detseg.structures.batch import Batch


def batch_of(image_ids, class_labels=None) -> Batch:
    """A Batch of ``image_ids`` (and ``class_labels``, as given) with 1x1 placeholder images: what
    evaluators read of a batch."""
    n = len(image_ids)
    return Batch(images=torch.zeros(n, 3, 1, 1, dtype=torch.uint8), image_sizes=[(1, 1)] * n,
                 orig_sizes=[(1, 1)] * n, image_ids=list(image_ids), class_labels=class_labels)

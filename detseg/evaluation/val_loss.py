"""Validation loss: the training loss terms averaged over the evaluation images (and ranks)."""
from __future__ import annotations

import torch

from detseg.utils.distributed import all_gather_object


class ValidationLoss:
    """``update(losses, num_images)`` per batch; ``result()`` is a collective in distributed runs."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.images = 0

    def update(self, losses: dict[str, torch.Tensor], num_images: int) -> None:
        # Each term is a batch mean; weighting by the batch size makes a short last batch count less.
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * num_images
        self.images += num_images

    def result(self) -> dict[str, float]:
        """``{"loss": total, "loss_<head>_<term>": ...}`` over every rank's images; ``{}`` without any."""
        sums: dict[str, float] = {}
        images = 0
        for rank_sums, rank_images in all_gather_object((self.sums, self.images)):
            for key, value in rank_sums.items():
                sums[key] = sums.get(key, 0.0) + value
            images += rank_images
        if not images:
            return {}
        means = {key: sums[key] / images for key in sorted(sums)}
        return {"loss": sum(means.values()), **means}

"""What every semantic head shares: the per-pixel loss (label maps: detseg.models.layers.postprocess).

Logits cover the padded input (``[B, C, Hp, Wp]``, C = num_classes + 1, channel 0 = background).
Targets are ``batch.sem_seg`` (int64 [B, H, W], 0 = background, c + 1 = class c, 255 = ignore),
padded with 255 by collate; H, W <= Hp, Wp.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from detseg.structures import Batch

IGNORE_INDEX = 255


def semantic_loss(logits: Tensor, batch: Batch, name: str, weight: float = 1.0,
                  hard_fraction: float | None = None) -> dict[str, Tensor]:
    """``{"loss_<name>_ce": weight * mean cross-entropy over the labelled pixels}``.

    ``hard_fraction`` (0, 1]: average only over that fraction of the labelled pixels with the highest
    loss (bootstrapped cross-entropy), so a background that covers most of the image stops drowning
    the object pixels once it is easy; None averages over all of them (Long et al.).
    """
    if batch.sem_seg is None:
        raise ValueError("a semantic model needs sem_seg targets: set data.task=semantic")
    target = batch.sem_seg
    logits = logits[..., : target.shape[-2], : target.shape[-1]]  # drop the divisibility padding
    if hard_fraction is not None:
        return {f"loss_{name}_ce": weight * _hardest_pixels_loss(logits, target, hard_fraction)}
    # the mean over labelled pixels, written as sum / count so an all-ignore batch gives 0, not nan,
    # without a host sync to test for it
    total = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum")
    loss = total / (target != IGNORE_INDEX).sum().clamp(min=1)
    return {f"loss_{name}_ce": weight * loss}


def _hardest_pixels_loss(logits: Tensor, target: Tensor, fraction: float) -> Tensor:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"model.fcn.hard_pixel_fraction must be in (0, 1], got {fraction}")
    per_pixel = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="none").flatten()
    labelled = int((target != IGNORE_INDEX).sum())  # ignored pixels have loss 0 and sort last
    keep = max(1, round(fraction * labelled))
    if labelled == 0:
        return per_pixel.sum() * 0.0  # keeps the graph connected for DDP
    return per_pixel.topk(keep, sorted=False).values.mean()

"""Selection helpers on flat tensors that carry an image index (one op for the whole batch)."""
from __future__ import annotations

import torch
from torch import Tensor


def top_k_per_image(image_idx: Tensor, num_images: int, k: int) -> tuple[Tensor, list[int]]:
    """Entries arrive sorted by score; return indices of each image's first k (image-major) and counts."""
    order = torch.sort(image_idx, stable=True).indices
    sorted_idx = image_idx[order]
    counts = torch.bincount(sorted_idx, minlength=num_images)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(sorted_idx), device=image_idx.device) - starts[sorted_idx]
    return order[rank < k], counts.clamp(max=k).tolist()


def clip_to_image_sizes(boxes: Tensor, image_idx: Tensor, image_sizes: list[tuple[int, int]]) -> Tensor:
    """boxes [N, ..., 4] clipped to the (h, w) of the image each row belongs to."""
    limits = boxes.new_tensor([[w, h, w, h] for h, w in image_sizes])[image_idx]
    limits = limits.view(limits.shape[0], *([1] * (boxes.dim() - 2)), 4)
    return torch.minimum(boxes.clamp(min=0), limits)

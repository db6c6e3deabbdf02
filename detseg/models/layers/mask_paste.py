"""Paste M x M mask probabilities into full-size images: all masks of an image in a few batched ops.

The result equals resizing each mask, padded by one pixel on every side, with bilinear interpolation
(``align_corners=False``) onto its box, expanded by the padding and cut to integer pixels, then
pasting it (torchvision's and detectron2's legacy rule). A bilinear resize is separable, so instead
of one ``interpolate`` call per mask each mask becomes ``Wy @ mask @ Wx^T`` with sparse row/column
interpolation matrices, computed for a chunk of masks at once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK = 64  # masks per batched product: bounds the [chunk, H, W] float buffer


def _expanded_int_boxes(boxes: Tensor, mask_size: int, padding: int) -> Tensor:
    scale = (mask_size + 2 * padding) / mask_size
    centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale
    return torch.cat([centre - half, centre + half], dim=1).to(torch.int64)  # truncation, as torchvision


def _interp_matrix(start: Tensor, length: Tensor, src_size: int, out_size: int) -> Tensor:
    """[N, out_size, src_size]: row p holds the bilinear weights of image pixel p for a box that covers
    pixels start .. start + length - 1 (rows outside the box are zero)."""
    pixel = torch.arange(out_size, device=start.device)[None, :] - start[:, None]  # index inside the box
    inside = (pixel >= 0) & (pixel < length[:, None])
    scale = src_size / length.to(torch.float32)
    src = ((pixel.to(torch.float32) + 0.5) * scale[:, None] - 0.5).clamp(min=0)
    low = src.to(torch.int64).clamp(max=src_size - 1)
    high = (low + 1).clamp(max=src_size - 1)
    frac = src - low.to(torch.float32)
    weights = torch.zeros(*pixel.shape, src_size, device=start.device)
    weights.scatter_add_(2, low[..., None], (1 - frac)[..., None])
    weights.scatter_add_(2, high[..., None], frac[..., None])
    return weights * inside[..., None]


def paste_masks(probs: Tensor, boxes: Tensor, image_size: tuple[int, int], threshold: float | None = 0.5,
                padding: int = 1) -> Tensor:
    """probs [N, M, M] in [0, 1], boxes [N, 4] xyxy in the target image -> [N, H, W] (bool if thresholded)."""
    h, w = image_size
    if len(probs) == 0:
        return probs.new_zeros((0, h, w), dtype=torch.bool if threshold is not None else probs.dtype)
    padded = F.pad(probs, (padding,) * 4)
    src = padded.shape[-1]
    ints = _expanded_int_boxes(boxes, probs.shape[-1], padding)
    widths = (ints[:, 2] - ints[:, 0] + 1).clamp(min=1)
    heights = (ints[:, 3] - ints[:, 1] + 1).clamp(min=1)
    out = []
    for sl in torch.arange(len(probs), device=probs.device).split(CHUNK):
        rows = _interp_matrix(ints[sl, 1], heights[sl], src, h)
        cols = _interp_matrix(ints[sl, 0], widths[sl], src, w)
        pasted = rows @ (padded[sl] @ cols.transpose(1, 2))
        out.append(pasted >= threshold if threshold is not None else pasted)
    return torch.cat(out)

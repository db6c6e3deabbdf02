"""Paste M x M mask probabilities into full-size images: all masks of an image in a few batched ops.

The result equals resizing each mask, padded by one pixel on every side, with bilinear interpolation
(``align_corners=False``) onto its box, expanded by the padding and cut to integer pixels, then
pasting it (torchvision's and detectron2's legacy rule). A bilinear resize is separable, so instead
of one ``interpolate`` call per mask each mask becomes ``Wy @ mask @ Wx^T`` with sparse row/column
interpolation matrices, computed for a chunk of masks at once over a window as large as the chunk's
largest box (clipped to the image), not over the whole image: a box's pixels are all that change.
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


def _window(start: Tensor, length: Tensor, size: int) -> tuple[Tensor, int]:
    """First pixels [N] and common extent of windows inside [0, size) that hold each box's in-image
    pixels start .. start + length - 1."""
    low, high = start.clamp(0, size), (start + length).clamp(0, size)
    extent = int((high - low).max().clamp(min=1))
    return low.clamp(max=size - extent), extent


def _interp_matrix(start: Tensor, length: Tensor, src_size: int, first: Tensor, out_size: int) -> Tensor:
    """[N, out_size, src_size]: row p holds the bilinear weights of image pixel first + p for a box that
    covers pixels start .. start + length - 1 (rows outside the box are zero)."""
    pixel = torch.arange(out_size, device=start.device)[None, :] + (first - start)[:, None]  # index in the box
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
    dtype = torch.bool if threshold is not None else probs.dtype
    out = probs.new_zeros((len(probs), h, w), dtype=dtype)
    for sl in torch.arange(len(probs), device=probs.device).split(CHUNK):
        top, tall = _window(ints[sl, 1], heights[sl], h)
        left, wide = _window(ints[sl, 0], widths[sl], w)
        rows = _interp_matrix(ints[sl, 1], heights[sl], src, top, tall)
        cols = _interp_matrix(ints[sl, 0], widths[sl], src, left, wide)
        pasted = rows @ (padded[sl] @ cols.transpose(1, 2))  # [chunk, tall, wide]
        pasted = pasted >= threshold if threshold is not None else pasted.to(dtype)
        for index, y, x, window in zip(sl.tolist(), top.tolist(), left.tolist(), pasted):
            out[index, y:y + tall, x:x + wide] = window
    return out

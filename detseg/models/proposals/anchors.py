"""Anchor boxes: sizes x aspect ratios at every location of each feature map."""
from __future__ import annotations

import torch
from torch import Tensor


def base_anchors(sizes: list[float], aspect_ratios: list[float]) -> Tensor:
    """[len(ratios) * len(sizes), 4] anchors centred on 0, rounded to whole pixels as in Faster R-CNN.

    Ordered ratio-major, size-minor, the layout torchvision's RPN head weights expect.
    """
    scales = torch.as_tensor(sizes, dtype=torch.float32)
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float32)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


class AnchorGenerator:
    """Anchors for a list of feature maps, cached per (shapes, strides, device)."""

    def __init__(self, sizes: list[list[float]], aspect_ratios: list[float]):
        self.cell_anchors = [base_anchors(s, aspect_ratios) for s in sizes]
        self._cache: dict[tuple, list[Tensor]] = {}

    @property
    def num_anchors_per_location(self) -> list[int]:
        return [len(a) for a in self.cell_anchors]

    def __call__(self, grid_sizes: list[tuple[int, int]], strides: list[int], device) -> list[Tensor]:
        """One [H*W*A, 4] tensor per level, location-major then anchor."""
        if len(grid_sizes) != len(self.cell_anchors):
            raise ValueError(
                f"model.rpn.anchor_sizes has {len(self.cell_anchors)} entries but the RPN reads "
                f"{len(grid_sizes)} feature maps (model.rpn.in_features)"
            )
        key = (tuple(grid_sizes), tuple(strides), str(device))
        if key not in self._cache:
            self._cache = {key: [self._grid(c, g, s, device) for c, g, s in zip(self.cell_anchors, grid_sizes, strides)]}
        return self._cache[key]

    @staticmethod
    def _grid(cell: Tensor, grid: tuple[int, int], stride: int, device) -> Tensor:
        ys = torch.arange(grid[0], dtype=torch.float32, device=device) * stride
        xs = torch.arange(grid[1], dtype=torch.float32, device=device) * stride
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)
        return (shifts + cell.to(device)[None]).reshape(-1, 4)

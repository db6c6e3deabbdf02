"""SSD's default boxes: a fixed set of boxes per feature-map cell (Liu et al. 2016, section 2.2)."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def linear_scales(num_maps: int, min_scale: float, max_scale: float) -> list[float]:
    """s_k = s_min + (s_max - s_min) (k - 1) / (m - 1) for k = 1..m, plus 1.0 so the last map also
    has the extra square box of scale sqrt(s_m * s_m+1)."""
    if num_maps == 1:
        return [min_scale, max_scale]
    step = (max_scale - min_scale) / (num_maps - 1)
    return [min_scale + step * k for k in range(num_maps)] + [1.0]


class DefaultBoxes:
    """Per map k: a square box of scale s_k, one of sqrt(s_k s_k+1), and for each ratio r in
    ``aspect_ratios[k]`` the pair (s_k sqrt(r), s_k / sqrt(r)) and its transpose; scales are
    fractions of the input side. Order: cell-major (row, column), then box, as the predictors.
    """

    def __init__(self, aspect_ratios: list[list[float]], scales: list[float], steps: list[float] | None = None,
                 clip: bool = True):
        if len(scales) != len(aspect_ratios) + 1:
            raise ValueError(f"SSD needs one scale per feature map plus one: {len(aspect_ratios)} maps, "
                             f"{len(scales)} scales")
        if steps is not None and len(steps) != len(aspect_ratios):
            raise ValueError(f"model.ssd.steps has {len(steps)} entries for {len(aspect_ratios)} feature maps")
        self.aspect_ratios = [list(r) for r in aspect_ratios]
        self.scales = list(scales)
        self.steps = steps
        self.clip = clip
        self._cache: dict = {}

    def num_per_cell(self) -> list[int]:
        return [2 + 2 * len(ratios) for ratios in self.aspect_ratios]

    def shapes(self, k: int) -> Tensor:
        """[A_k, 2] (w, h) of map k's boxes as fractions of the input width and height."""
        s, s_next = self.scales[k], self.scales[k + 1]
        pairs = [[s, s], [math.sqrt(s * s_next)] * 2]
        for ratio in self.aspect_ratios[k]:
            root = math.sqrt(ratio)
            pairs += [[s * root, s / root], [s / root, s * root]]
        wh = torch.tensor(pairs, dtype=torch.float32)
        return wh.clamp(0, 1) if self.clip else wh

    def __call__(self, grid_sizes: list[tuple[int, int]], input_hw: tuple[int, int], device) -> Tensor:
        """All boxes [sum_k H_k W_k A_k, 4], xyxy in pixels of an input of ``input_hw``."""
        key = (tuple(map(tuple, grid_sizes)), tuple(input_hw), str(device))
        if key not in self._cache:
            boxes = torch.cat([self._map_boxes(k, hw, input_hw) for k, hw in enumerate(grid_sizes)])
            self._cache = {key: boxes.to(device)}  # one entry: inputs are a fixed size in practice
        return self._cache[key]

    def _map_boxes(self, k: int, grid_hw: tuple[int, int], input_hw: tuple[int, int]) -> Tensor:
        rows, cols = grid_hw
        if self.steps is not None:  # centres every ``step`` pixels, whatever the map size
            cells_y, cells_x = input_hw[0] / self.steps[k], input_hw[1] / self.steps[k]
        else:
            cells_y, cells_x = rows, cols
        cx = (torch.arange(cols) + 0.5) / cells_x
        cy = (torch.arange(rows) + 0.5) / cells_y
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")
        wh = self.shapes(k)
        centres = torch.stack((cx, cy), dim=-1).reshape(-1, 1, 2).expand(-1, len(wh), 2)
        wh = wh.expand_as(centres)
        size = torch.tensor([input_hw[1], input_hw[0]])
        return torch.cat(((centres - 0.5 * wh) * size, (centres + 0.5 * wh) * size), dim=-1).reshape(-1, 4)

"""Ground-truth boxes against the RPN's anchors at the config's test input scale: the share of
objects that no anchor matches before training starts.

Each box is resized as the test transform would resize its image (shortest edge to
``data.min_size_test`` with the long edge capped at ``data.max_size_test``, or stretched to
``data.fixed_size`` [h, w]). Its best anchor is the one of the highest IoU when anchor and box share a
centre (shape only, as detseg.data.autosize.anchor_coverage does: an upper bound that ignores the
stride's grid). The RPN labels an anchor positive at IoU >= 0.7 (model.rpn.fg_iou_thresh), or as
the best anchor of a box: a box below 0.7 is learned only through that rule, and below 0.5 only from
an anchor too far off to regress well (counted as lost before training starts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

from detseg.data.autosize import SizeStats

SIDE_QUANTILES = (0.02, 0.10, 0.50, 0.90, 0.98)


@dataclass
class AnchorSetup:
    """What the resolved config says (no "auto" left): anchors and the test resize."""
    anchor_sizes: list[list[float]]
    aspect_ratios: list[float]
    min_size_test: int | None = None
    max_size_test: int | None = None
    fixed_size: list[int] | None = None   # [h, w]: replaces min / max

    def scale_xy(self, hw) -> tuple[float, float]:
        """(x, y) factors the test resize applies to an image of (h, w)."""
        h, w = float(hw[0]), float(hw[1])
        if self.fixed_size is not None:
            return self.fixed_size[1] / w, self.fixed_size[0] / h
        scale = min(self.min_size_test / min(h, w), self.max_size_test / max(h, w))
        return scale, scale

    def describe(self) -> str:
        resize = (f"every image resized to {list(self.fixed_size)} (h, w)" if self.fixed_size is not None else
                  f"short side {self.min_size_test}, long side <= {self.max_size_test}")
        return f"test input: {resize}; anchors {self.anchor_sizes} x aspect ratios {self.aspect_ratios}"


def scaled_box_wh(stats: SizeStats, setup: AnchorSetup) -> np.ndarray:
    """[M, 2] box (w, h) in the pixels the network sees."""
    factors = np.array([setup.scale_xy(hw) for hw in stats.image_hw]).reshape(-1, 2)
    return stats.box_wh * factors[stats.box_image]


def best_anchor_iou(wh: np.ndarray, setup: AnchorSetup) -> np.ndarray:
    """[M] IoU of each box with its best centred anchor (ratio r = h / w, as the anchor generator)."""
    if not len(wh):
        return np.zeros(0)
    anchors = torch.tensor([[s * math.sqrt(1 / r), s * math.sqrt(r)] for level in setup.anchor_sizes
                            for s in level for r in setup.aspect_ratios], dtype=torch.float32)
    boxes = torch.as_tensor(np.asarray(wh), dtype=torch.float32)
    return box_iou(_centred(boxes), _centred(anchors)).max(dim=1).values.numpy()


def _centred(wh: torch.Tensor) -> torch.Tensor:
    return torch.cat([-wh / 2, wh / 2], dim=1)


def anchor_report(stats: SizeStats | None, setup: AnchorSetup) -> dict:
    """Box sides (sqrt of area, network pixels) and the shares matched at IoU 0.5 and 0.7."""
    if stats is None or not len(stats.box_wh):
        return {"setup": setup.describe(), "num_boxes": 0}
    wh = scaled_box_wh(stats, setup)
    sides = np.sqrt(np.prod(np.maximum(wh, 1e-6), axis=1))
    best = best_anchor_iou(wh, setup)
    return {
        "setup": setup.describe(),
        "num_boxes": int(len(wh)),
        "box_side_px": {f"p{round(q * 100)}": round(float(np.quantile(sides, q)), 1) for q in SIDE_QUANTILES},
        "anchor_side_px": [min(min(level) for level in setup.anchor_sizes), max(max(level) for level in setup.anchor_sizes)],
        "boxes_iou_0.5": int((best >= 0.5).sum()),
        "boxes_iou_0.7": int((best >= 0.7).sum()),
        "share_iou_0.5": float((best >= 0.5).mean()),
        "share_iou_0.7": float((best >= 0.7).mean()),
    }

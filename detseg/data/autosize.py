"""Size-dependent settings derived from a training set: the ``auto`` values of the custom configs.

Only annotations and image headers are read (no decoding), so this takes well under a second per
thousand images. The rules, each chosen to hold on any domain rather than tuned to one dataset:

- **Input scale.** The test short side is the one at which the small objects of the set (the 10th
  percentile of sqrt(box area), or the median of the smallest class if less) become
  ``SMALL_OBJECT_PX`` pixels, three cells of the finest (stride-8) map (on BCCD, 16 px gave 59.6 AP
  and 24 px 61.2 in the same 10 CPU-minutes: finer localisation outweighs fewer steps); it is kept between ``MIN_SHORT`` and ``MAX_SHORT`` (the
  CPU budget), never above the images' own short side unless that is below ``MIN_SHORT``, and rounded
  to a multiple of 32. Training draws the short side from 0.8x to 1.2x of it (multi-scale); the long
  side is capped at the set's typical aspect ratio times the short side (at least 4:3).
- **Anchors.** One size per feature level, doubling from level to level as the strides do; the
  sizes are centred (in log scale) on the middle of the 2nd-98th percentile range of the objects at
  the chosen scale, so the levels cover the objects the set has rather than COCO's 32-512 px.
  ``anchor_coverage`` reports the share of objects some anchor matches at IoU 0.5 and 0.7 (RPN's
  positive threshold): what a user would lose before training starts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

SMALL_OBJECT_PX = 24.0
SMALL_OBJECT_QUANTILE = 0.10
MIN_SHORT, MAX_SHORT = 192, 512
TRAIN_SCALES = (0.8, 0.9, 1.0, 1.1, 1.2)
COVER_QUANTILES = (0.02, 0.98)


@dataclass
class SizeStats:
    """Image sizes ``[N, 2]`` (h, w), object sizes ``[M, 2]`` (w, h) in original pixels and the image
    index and label of each object ``[M]``."""
    image_hw: np.ndarray
    box_wh: np.ndarray
    box_image: np.ndarray
    box_label: np.ndarray

    @classmethod
    def of(cls, dataset) -> "SizeStats":
        """From a COCO / VOC dataset's annotations (``get_image_info`` and ``_load_target``; crowd boxes out)."""
        hws, boxes, labels = [], [], []
        for idx in range(len(dataset)):
            _, hw = dataset.get_image_info(idx)
            target_boxes, target_labels, iscrowd, _ = dataset._load_target(idx, hw)
            keep = ~np.asarray(iscrowd, bool)
            hws.append(hw)
            boxes.append(np.asarray(target_boxes, np.float64).reshape(-1, 4)[keep])
            labels.append(np.asarray(target_labels, np.int64)[keep])
        if not hws:
            raise ValueError(f"{dataset.source}: no images to derive the auto sizes from")
        box = np.concatenate(boxes)
        wh = np.stack([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], 1)
        image = np.repeat(np.arange(len(hws)), [len(b) for b in boxes])
        return cls(np.asarray(hws, np.float64), wh, image, np.concatenate(labels))

    def object_sides(self) -> np.ndarray:
        return np.sqrt(np.prod(np.maximum(self.box_wh, 1e-6), axis=1))

    def small_side(self) -> float | None:
        """The size the small objects have: the 10th percentile of all objects, or the median of the
        smallest class if that is smaller (a rare small class is not sacrificed to frequent big ones)."""
        sides = self.object_sides()
        if not len(sides):
            return None
        medians = [float(np.median(sides[self.box_label == c])) for c in np.unique(self.box_label)]
        return min(float(np.quantile(sides, SMALL_OBJECT_QUANTILE)), *medians)


@dataclass
class InputSize:
    min_size_train: list[int]
    max_size_train: int
    min_size_test: int
    max_size_test: int

    def scale_for(self, hw) -> float:
        h, w = float(hw[0]), float(hw[1])
        return min(self.min_size_test / min(h, w), self.max_size_test / max(h, w))


def choose_input_size(stats: SizeStats) -> InputSize:
    short = float(np.median(stats.image_hw.min(axis=1)))
    aspect = float(np.median(stats.image_hw.max(axis=1) / stats.image_hw.min(axis=1)))
    small = stats.small_side() or short / 8
    wanted = short * SMALL_OBJECT_PX / max(small, 1.0)
    test_short = min(wanted, short) if short >= MIN_SHORT else wanted
    test_short = _round_to(min(max(test_short, MIN_SHORT), MAX_SHORT), 32)
    test_long = _round_to(test_short * max(aspect, 4 / 3), 32)
    train = sorted({_round_to(test_short * f, 16) for f in TRAIN_SCALES})
    return InputSize(train, _round_to(test_long * max(TRAIN_SCALES), 32), test_short, test_long)


def choose_anchor_sizes(stats: SizeStats, size: InputSize, num_levels: int) -> list[list[float]]:
    """One size per level (``num_levels``, each level twice the stride of the one before)."""
    scales = np.array([size.scale_for(hw) for hw in stats.image_hw])
    sides = _scaled_sides(stats, scales)
    if not len(sides):
        return [[32.0 * 2 ** i] for i in range(num_levels)]
    low, high = np.quantile(sides, COVER_QUANTILES)
    centre = 0.5 * (math.log2(max(low, 1.0)) + math.log2(max(high, 1.0)))
    first = 2 ** (centre - (num_levels - 1) / 2)
    return [[float(round(first * 2 ** i, 1))] for i in range(num_levels)]


def choose_default_box_scales(stats: SizeStats) -> tuple[float, float]:
    """SSD's (min_scale, max_scale): the 2nd and 98th percentile of the objects' sides relative to their
    image's (sqrt of areas), which a fixed-size resize keeps; within [0.02, 0.95]."""
    if not len(stats.box_wh):
        return 0.2, 0.9
    image_side = np.sqrt(np.prod(stats.image_hw, axis=1))[stats.box_image]
    relative = stats.object_sides() / image_side
    low, high = (float(np.clip(q, 0.02, 0.95)) for q in np.quantile(relative, COVER_QUANTILES))
    return round(low, 3), round(max(high, low + 0.05), 3)


def anchor_coverage(stats: SizeStats, size: InputSize, anchor_sizes: list[list[float]],
                    aspect_ratios: list[float]) -> tuple[float, float]:
    """Shares of objects whose best centred anchor has IoU >= 0.5 and >= 0.7 (shape only, as if the
    anchor sat on the object's centre: an upper bound that ignores the stride's grid)."""
    scales = np.array([size.scale_for(hw) for hw in stats.image_hw])
    wh = torch.as_tensor(_scaled_wh(stats, scales), dtype=torch.float32)
    if not len(wh):
        return 1.0, 1.0
    anchors = torch.tensor([[s * math.sqrt(1 / r), s * math.sqrt(r)] for level in anchor_sizes for s in level
                            for r in aspect_ratios], dtype=torch.float32)  # (w, h); ratio r = h / w
    best = box_iou(_centred(wh), _centred(anchors)).max(dim=1).values
    return float((best >= 0.5).float().mean()), float((best >= 0.7).float().mean())


def _scaled_wh(stats: SizeStats, scales: np.ndarray) -> np.ndarray:
    """Object (w, h) at the input scale of the image each object is on."""
    return stats.box_wh * scales[stats.box_image][:, None]


def _scaled_sides(stats: SizeStats, scales: np.ndarray) -> np.ndarray:
    wh = _scaled_wh(stats, scales)
    return np.sqrt(np.prod(np.maximum(wh, 1e-6), axis=1))


def _centred(wh: torch.Tensor) -> torch.Tensor:
    return torch.cat([-wh / 2, wh / 2], dim=1)


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)

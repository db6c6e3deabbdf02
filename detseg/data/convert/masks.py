"""Mask shape changes between formats: RLE -> polygons, several polygon parts -> one YOLO-seg outline."""
from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def rle_to_polygons(rle: dict, hw: tuple[int, int]) -> list[list[float]]:
    """Polygons tracing the pixel edges of a COCO RLE (compressed or not); holes are lost."""
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *hw)
    mask = mask_utils.decode(rle).astype(np.uint8)
    # Contours of the 2x (nearest) upsampled mask, halved, follow pixel edges, so pycocotools
    # rasterizes them back to (nearly) the same pixels; contours through pixel centres lose a rim.
    upsampled = cv2.resize(mask, (2 * mask.shape[1], 2 * mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(upsampled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [(c.reshape(-1) / 2).tolist() for c in contours if len(c) >= 3]


def merge_parts(polygons: list[list[float]]) -> list[float]:
    """One outline for a YOLO-seg line, which holds a single polygon per object.

    Each further part is reached from the first vertex of the first part and left the same way
    back: the bridge is traversed twice in opposite directions, so it encloses no area and the
    outline rasterizes (even-odd rule, as pycocotools does) to the union of disjoint parts.
    """
    parts = [list(p) for p in polygons if len(p) >= 6]
    if not parts:
        return []
    merged = list(parts[0]) + parts[0][:2]  # closed, back at the anchor vertex
    for part in parts[1:]:
        merged += part + part[:2] + parts[0][:2]
    return merged


def polygons_box(polygons: list[list[float]]) -> tuple[float, float, float, float]:
    xs = np.concatenate([np.asarray(p[0::2], np.float64) for p in polygons])
    ys = np.concatenate([np.asarray(p[1::2], np.float64) for p in polygons])
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def mask_area(polygons: list[list[float]] | None, rle: dict | None, hw: tuple[int, int]) -> float:
    """Pixel area of a polygon or RLE mask as pycocotools counts it."""
    if rle is not None:
        encoded = mask_utils.frPyObjects(rle, *hw) if isinstance(rle.get("counts"), list) else rle
    else:
        encoded = mask_utils.merge(mask_utils.frPyObjects(polygons, *hw))
    return float(mask_utils.area(encoded))

"""Label maps as palette PNGs, the PASCAL VOC ``SegmentationClass`` format.

A pixel's value is its class index (0 = background, c + 1 = class c, 255 = ignore); the
palette only decides how viewers show it. VOC's colour map (bit-interleaved class index) is
used so written files look like VOC's own.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from detseg.data.errors import DatasetError


def voc_palette(count: int = 256) -> np.ndarray:
    """uint8 [count, 3]: VOC's colours, class i's bits spread over the high bits of R, G and B."""
    colors = np.zeros((count, 3), np.uint8)
    for index in range(count):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colors[index] = (r, g, b)
    return colors


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """uint8-valued [H, W] label map -> palette PNG (mode "P"), byte-identical for equal input."""
    if labels.ndim != 2 or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(f"a label map must be [H, W] with values 0..255, got shape {labels.shape}")
    image = Image.fromarray(np.ascontiguousarray(labels, np.uint8))  # mode "L" ...
    image.putpalette(voc_palette().reshape(-1).tolist())  # ... becomes "P", values untouched
    image.save(path, format="PNG", optimize=False)


def read_label_png(path: str | Path) -> np.ndarray:
    """Palette ("P") or grey ("L") PNG -> uint8 [H, W] class indices; colour PNGs are refused."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DatasetError(f"{path}: a label PNG must hold indices (mode P or L), got mode {image.mode}; "
                                   "colour-coded maps are not supported")
            return np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read label PNG ({exc})") from exc

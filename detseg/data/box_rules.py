"""What makes an annotated box unusable, what is repaired, and how: one implementation for the
COCO and VOC datasets (training, evaluation) and ``tools/check_dataset.py``, so that the checker
and training always agree on what is bad.

Boxes here are xyxy pixel edges of the displayed image (COCO ``[x, y, w, h]`` and VOC's 1-based
inclusive indices are converted by the datasets first).

Dropped (errors under ``data.on_bad_sample: error``; counted and dropped under "skip"):
- ``invalid_box``: not four finite numbers, or zero or negative width/height;
- ``degenerate_box``: a side of at most one pixel once clipped to the image (a point or a line: a
  stray click, not an object; VOC's ``xmin == xmax``, a zero-size box as drawn, lands here);
- ``box_outside_image``: no part of the box lies on the image.

Repaired (warnings; training goes on with the repaired box):
- ``box_partly_outside``: a box touching or crossing the border is clipped to the image;
- ``duplicate_box``: an exact copy (same class, same coordinates) of a box earlier in the same image
  is dropped, as it would otherwise count as an object missed by every detector.
"""
from __future__ import annotations

import math

import numpy as np

DROPPED_KINDS = ("invalid_box", "degenerate_box", "box_outside_image")
REPAIRED_KINDS = ("box_partly_outside", "duplicate_box")
MIN_BOX_SIDE = 1.0  # pixels; a clipped side at or below it is a point or a line


def xyxy_problem(box, hw: tuple[int, int]) -> tuple[str, str] | None:
    """(kind, description) if the xyxy box is unusable on an image of size ``hw`` = (h, w), else None."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return "invalid_box", "is not four numbers"
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return "invalid_box", "has NaN or infinite values"
    if x2 <= x1 or y2 <= y1:
        return "invalid_box", "has zero or negative width/height"
    h, w = hw
    if x1 >= w or y1 >= h or x2 <= 0 or y2 <= 0:
        return "box_outside_image", f"lies entirely outside the {w}x{h} image"
    side_w, side_h = min(x2, w) - max(x1, 0.0), min(y2, h) - max(y1, 0.0)
    if min(side_w, side_h) <= MIN_BOX_SIDE:
        return "degenerate_box", f"is {side_w:g} x {side_h:g} px on the image: a point or a line, not an object"
    return None


def crosses_border(box, hw: tuple[int, int]) -> bool:
    """True if a usable xyxy box extends past the image and will be clipped."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1 < 0 or y1 < 0 or x2 > hw[1] or y2 > hw[0]


def clip_xyxy(box, hw: tuple[int, int]) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [min(max(x1, 0.0), hw[1]), min(max(y1, 0.0), hw[0]), min(max(x2, 0.0), hw[1]), min(max(y2, 0.0), hw[0])]


class DuplicateFinder:
    """Remembers the boxes of one image; ``seen(label, box)`` is True for an exact repeat."""

    def __init__(self):
        self._keys: set = set()

    def seen(self, label, box) -> bool:
        key = (label, *np.round(np.asarray(box, np.float64), 6).tolist())
        if key in self._keys:
            return True
        self._keys.add(key)
        return False

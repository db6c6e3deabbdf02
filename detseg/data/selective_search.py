"""Selective search proposals (Uijlings et al. 2013) through OpenCV's ``cv2.ximgproc``.

Rules:
- Runs on the original image (RGB uint8 [H, W, 3]); with ``max_side`` set, the image is first
  downscaled so its long side is at most ``max_side`` (much faster on large photos), and the boxes
  are scaled back to the original pixels. Boxes are float32 xyxy in the original image, inside it.
- Boxes narrower or shorter than ``min_size`` pixels (in the original image) are dropped, then
  exact duplicates (which downscaling makes common), keeping OpenCV's order (its rough ranking),
  then the first ``max_proposals`` are kept.
- "fast" and "quality" are OpenCV's two presets (quality: more strategies, ~2-3x slower, more boxes).
"""
from __future__ import annotations

import numpy as np

# model.proposals.mode -> the OpenCV preset switch it calls
MODES = {"fast": "switchToSelectiveSearchFast", "quality": "switchToSelectiveSearchQuality"}
FIX = "pip install --force-reinstall --no-deps opencv-contrib-python-headless"


class SelectiveSearchUnavailable(ImportError):
    """This OpenCV has no cv2.ximgproc: the R-CNN family's selective search proposals cannot be made."""


def _ximgproc():
    import cv2

    if not hasattr(cv2, "ximgproc"):
        raise SelectiveSearchUnavailable(
            "selective search unavailable: needs opencv-contrib-python-headless (cv2.ximgproc), which this "
            f"OpenCV lacks (another opencv package may shadow it); fix: {FIX}"
        )
    return cv2


def selective_search(image: np.ndarray, mode: str = "fast", max_proposals: int = 2000, min_size: float = 4.0,
                     max_side: int | None = None) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [M, 4] xyxy boxes in the image's pixels, M <= max_proposals."""
    if mode not in MODES:
        raise ValueError(f"model.proposals.mode must be one of {', '.join(MODES)}, got '{mode}'")
    cv2 = _ximgproc()
    h, w = image.shape[:2]
    scale = 1.0
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(np.ascontiguousarray(image[:, :, ::-1]))  # OpenCV wants BGR
    getattr(search, MODES[mode])()
    rects = np.asarray(search.process(), np.float32).reshape(-1, 4)  # x, y, w, h
    return postprocess(rects, scale, (h, w), max_proposals, min_size)


def postprocess(rects: np.ndarray, scale: float, hw: tuple[int, int], max_proposals: int, min_size: float) -> np.ndarray:
    """OpenCV [x, y, w, h] at ``scale`` -> clipped, filtered, deduplicated xyxy in the original image."""
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / scale
    np.clip(boxes[:, 0::2], 0, hw[1], out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, hw[0], out=boxes[:, 1::2])
    wh = boxes[:, 2:] - boxes[:, :2]
    boxes = boxes[(wh >= min_size).all(axis=1)]
    _, first = np.unique(boxes, axis=0, return_index=True)
    boxes = boxes[np.sort(first)]
    return np.ascontiguousarray(boxes[:max_proposals], dtype=np.float32)

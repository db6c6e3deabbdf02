"""Drawing predictions on images (OpenCV), for tools/infer.py and the demo."""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from detseg.structures import Instances


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour per class (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_masks(image: np.ndarray, masks: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 [H, W, 3] + bool [N, H, W] -> a copy with each instance blended in its own colour."""
    canvas = image.astype(np.float32)
    for index, mask in enumerate(masks):
        color = np.array(class_color(index + 3), np.float32)  # per instance, not per class
        canvas[mask] = canvas[mask] * (1 - alpha) + color * alpha
    return canvas.round().astype(np.uint8)


def draw_instances(image: np.ndarray, instances: Instances, class_names: list[str],
                   captions: list[str] | None = None) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> a copy with masks (when predicted), then boxes, class names and scores drawn.
    ``captions`` replaces the "name score" texts (ground truth has no scores)."""
    canvas = np.ascontiguousarray(image.copy())
    if instances.masks is not None and len(instances):
        canvas = draw_masks(canvas, instances.masks.cpu().numpy().astype(bool))
    thickness = max(1, round(min(canvas.shape[:2]) / 300))
    font_scale = max(0.35, min(canvas.shape[:2]) / 900)
    rows = zip(instances.boxes.tolist(), instances.scores.tolist(), instances.labels.tolist())
    for index, (box, score, label) in enumerate(rows):
        color = class_color(label)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        name = class_names[label] if label < len(class_names) else str(label)
        text = captions[index] if captions is not None else f"{name} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(y1 - th - base, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw, top + th + base), color, -1)
        cv2.putText(canvas, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def draw_semantic(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB uint8 [H, W, 3] + label map [H, W] (0 = background, c + 1 = class c) -> a copy with each
    class's pixels blended with its colour (the same colour as its boxes); background stays as is."""
    labels = np.asarray(labels)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"label map {labels.shape} does not match the image {image.shape[:2]}")
    lut = np.zeros((256, 3), np.float32)
    for value in range(1, 255):
        lut[value] = class_color(value - 1)
    tint = lut[labels.astype(np.uint8)]
    covered = ((labels > 0) & (labels < 255))[..., None]
    blended = image.astype(np.float32) * (1 - alpha) + tint * alpha
    return np.where(covered, blended, image).round().astype(np.uint8)

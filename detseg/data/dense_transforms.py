"""Training augmentation of the one-stage detectors (SSD, YOLO) and fixed-size resizing.

albumentations has the photometric, flip, affine and resize pieces; SSD's zoom-out ("expand") and
its IoU-constrained random crop (Liu et al. 2016, section 2.2 and 3.6) are written here as
albumentations transforms, so ``DetectionTransform`` keeps boxes, labels and masks aligned.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from detseg.data.transforms import A, DetectionTransform, ResizeShortestEdge  # sets NO_ALBUMENTATIONS_UPDATE first
from albumentations.augmentations.crops.transforms import BaseCrop  # noqa: E402

SSD_MEAN_FILL = (123, 117, 104)  # zoom-out fills the canvas with the mean pixel: normalised, it is zero


class ZoomOut(A.DualTransform):
    """Places the image at a random spot of a canvas ``ratio`` times larger (ratio in [1, max_ratio]):
    after the fixed-size resize, objects are smaller, which trains the coarse-scale default boxes."""

    def __init__(self, max_ratio: float = 4.0, fill: Sequence[int] = SSD_MEAN_FILL, p: float = 0.5):
        super().__init__(p=p)
        self.max_ratio = max_ratio
        self.fill = tuple(fill)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        ratio = self.py_random.uniform(1.0, self.max_ratio)
        out_h, out_w = int(h * ratio), int(w * ratio)
        top = int(self.py_random.uniform(0, out_h - h))
        left = int(self.py_random.uniform(0, out_w - w))
        return {"canvas": (out_h, out_w), "offset": (top, left), "size": (h, w)}

    def apply(self, img: np.ndarray, canvas, offset, size, **params: Any) -> np.ndarray:
        out = np.empty((*canvas, *img.shape[2:]), dtype=img.dtype)
        out[...] = np.asarray(self.fill[: img.shape[2]] if img.ndim == 3 else 0, dtype=img.dtype)
        out[offset[0] : offset[0] + size[0], offset[1] : offset[1] + size[1]] = img
        return out

    def apply_to_mask(self, mask: np.ndarray, canvas, offset, size, **params: Any) -> np.ndarray:
        out = np.zeros((*canvas, *mask.shape[2:]), dtype=mask.dtype)
        out[offset[0] : offset[0] + size[0], offset[1] : offset[1] + size[1]] = mask
        return out

    def apply_to_bboxes(self, bboxes: np.ndarray, canvas, offset, size, **params: Any) -> np.ndarray:
        """albumentations keeps boxes normalised to the image: rescale to the canvas."""
        bboxes = bboxes.copy()
        scale = np.array([size[1] / canvas[1], size[0] / canvas[0]] * 2)
        shift = np.array([offset[1] / canvas[1], offset[0] / canvas[0]] * 2)
        bboxes[:, :4] = bboxes[:, :4] * scale + shift
        return bboxes

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("max_ratio", "fill")


class RandomIoUCrop(BaseCrop):
    """SSD's patch sampling: pick a minimum IoU from ``min_ious`` (None: keep the whole image), then try
    up to ``trials`` patches of [min_scale, 1] of each side and aspect ratio in [1/2, 2] until one
    overlaps some object with at least that IoU. Objects whose centre leaves the patch are dropped."""

    def __init__(self, min_ious: Sequence[float | None] = (None, 0.1, 0.3, 0.5, 0.7, 0.9), min_scale: float = 0.3,
                 trials: int = 40, p: float = 1.0):
        super().__init__(p=p)
        self.min_ious = list(min_ious)
        self.min_scale = min_scale
        self.trials = trials

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        boxes = np.asarray(data.get("bboxes", np.zeros((0, 4))), dtype=np.float64)[:, :4]
        min_iou = self.py_random.choice(self.min_ious)
        if min_iou is not None and len(boxes):
            for _ in range(self.trials):
                patch = self._sample_patch()
                if patch is not None and _best_iou(boxes, patch) >= min_iou and _centres_inside(boxes, patch).any():
                    x0, y0, x1, y1 = patch
                    return {"crop_coords": (int(x0 * w), int(y0 * h), max(int(x1 * w), int(x0 * w) + 1),
                                            max(int(y1 * h), int(y0 * h) + 1))}
        return {"crop_coords": (0, 0, w, h)}

    def _sample_patch(self) -> tuple[float, float, float, float] | None:
        """A patch in normalised image coordinates, or None when its aspect ratio is out of [1/2, 2]."""
        pw = self.py_random.uniform(self.min_scale, 1.0)
        ph = self.py_random.uniform(self.min_scale, 1.0)
        if not 0.5 <= pw / ph <= 2.0:
            return None
        left = self.py_random.uniform(0, 1 - pw)
        top = self.py_random.uniform(0, 1 - ph)
        return left, top, left + pw, top + ph

    def apply_to_bboxes(self, bboxes: np.ndarray, crop_coords, **params: Any) -> np.ndarray:
        h, w = params["shape"][:2]
        patch = (crop_coords[0] / w, crop_coords[1] / h, crop_coords[2] / w, crop_coords[3] / h)
        outside = ~_centres_inside(bboxes[:, :4], patch)
        cropped = super().apply_to_bboxes(bboxes, crop_coords, **params)
        cropped[outside, 2] = cropped[outside, 0]  # zero width: the box filter drops it
        return cropped

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_ious", "min_scale", "trials")


def _centres_inside(boxes: np.ndarray, patch) -> np.ndarray:
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx > patch[0]) & (cx < patch[2]) & (cy > patch[1]) & (cy < patch[3])


def _best_iou(boxes: np.ndarray, patch) -> float:
    lt = np.maximum(boxes[:, :2], patch[:2])
    rb = np.minimum(boxes[:, 2:], patch[2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
    patch_area = (patch[2] - patch[0]) * (patch[3] - patch[1])
    return float((inter / np.maximum(areas + patch_area - inter, 1e-12)).max())


def _photometric() -> A.BasicTransform:
    """torchvision's RandomPhotometricDistort ranges, after Howard 2013 as used by SSD."""
    return A.ColorJitter(brightness=(0.875, 1.125), contrast=(0.5, 1.5), saturation=(0.5, 1.5),
                         hue=(-0.05, 0.05), p=0.5)


def _yolo_jitter() -> list:
    """Redmon et al. 2016: random scaling and translation of up to 20% of the image, exposure and
    saturation changed by up to a factor of 1.5."""
    return [
        A.Affine(scale=(0.8, 1.2), translate_percent=(-0.2, 0.2), fill=0, p=1.0),
        A.ColorJitter(brightness=(1 / 1.5, 1.5), contrast=0.0, saturation=(1 / 1.5, 1.5), hue=0.0, p=1.0),
    ]


def _default_steps(data_cfg) -> list:
    c = data_cfg.color_jitter
    return [A.ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(c / 4, 0.5), p=1.0)] if c > 0 else []


# data.augment -> its training steps before the flip and the resize
AUGMENTS = {
    "default": _default_steps,
    "ssd": lambda data_cfg: [_photometric(), ZoomOut(), RandomIoUCrop()],
    "ssdlite": lambda data_cfg: [RandomIoUCrop()],
    "yolo": lambda data_cfg: _yolo_jitter(),
}


def build_dense_transforms(data_cfg, train: bool, with_masks: bool = False) -> DetectionTransform:
    """``data.augment`` in training, then a resize to ``data.fixed_size`` (or the shortest-edge one)."""
    augment = AUGMENTS.get(data_cfg.augment)
    if augment is None:
        raise ValueError(f"data.augment must be one of {', '.join(AUGMENTS)}, got '{data_cfg.augment}'")
    steps = augment(data_cfg) if train else []
    if train and data_cfg.flip_prob > 0:
        steps.append(A.HorizontalFlip(p=data_cfg.flip_prob))
    steps.append(_resize(data_cfg, train))
    return DetectionTransform(steps, require_masks=with_masks)


def _resize(data_cfg, train: bool):
    if data_cfg.fixed_size is not None:
        if len(data_cfg.fixed_size) != 2:
            raise ValueError(f"data.fixed_size must be [height, width], got {data_cfg.fixed_size}")
        return A.Resize(*data_cfg.fixed_size)
    if train:
        return ResizeShortestEdge(data_cfg.min_size_train, data_cfg.max_size_train)
    return ResizeShortestEdge(max(_as_list(data_cfg.min_size_test)), data_cfg.max_size_test)


def _as_list(value) -> list[int]:
    return [value] if isinstance(value, int) else list(value)


def uses_dense_transforms(data_cfg) -> bool:
    return data_cfg.augment != "default" or data_cfg.fixed_size is not None

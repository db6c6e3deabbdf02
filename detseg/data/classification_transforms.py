"""Classification transforms: the usual ImageNet recipe on albumentations.

Training: random resized crop (area fraction ``crop_scale``, aspect 3/4..4/3) to ``size``,
horizontal flip, optional colour jitter. Evaluation: resize the short side to size / 0.875
(torchvision's 256 for 224), then a centre crop to ``size``.
Seeding follows detseg.data.transforms (a per-sample seed from the sampler, else torch's seed).
"""
from __future__ import annotations

import os

import numpy as np

from detseg.data.transforms import DetectionTransform

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # its import would otherwise call the network
import albumentations as A  # noqa: E402

CENTER_CROP_FRACTION = 0.875  # evaluation crop side / resized short side (224 / 256)


class ImageTransform(DetectionTransform):
    """A DetectionTransform for images without targets: ``(image, seed) -> image``."""

    def __call__(self, image: np.ndarray, seed: int | None = None) -> np.ndarray:  # type: ignore[override]
        empty = np.zeros((0, 4), np.float32)
        return super().__call__(image, empty, np.zeros(0, np.int64), np.zeros(0, bool), None, seed=seed)[0]


def build_classification_transforms(train: bool, size: list[int] | None, crop_scale: list[float],
                                    flip_prob: float = 0.5, color_jitter: float = 0.0) -> ImageTransform:
    """``size`` is ``data.fixed_size`` ([h, w]); classification needs it."""
    if not size or len(size) != 2:
        raise ValueError(f"data.task classification needs data.fixed_size: [h, w] (the crop size), got {size}")
    h, w = int(size[0]), int(size[1])
    if not train:
        short = int(round(min(h, w) / CENTER_CROP_FRACTION))
        return ImageTransform([A.SmallestMaxSize(max_size=short), A.CenterCrop(height=h, width=w)])
    if len(crop_scale) != 2 or not 0 < crop_scale[0] <= crop_scale[1] <= 1:
        raise ValueError(f"data.crop_scale must be [low, high] with 0 < low <= high <= 1, got {crop_scale}")
    steps: list = [A.RandomResizedCrop(size=(h, w), scale=tuple(crop_scale), ratio=(3 / 4, 4 / 3))]
    if flip_prob > 0:
        steps.append(A.HorizontalFlip(p=flip_prob))
    if color_jitter > 0:
        steps.append(A.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter,
                                   hue=min(color_jitter / 4, 0.5), p=1.0))
    return ImageTransform(steps)

"""Detection transforms on numpy arrays, built on albumentations.

The callable returned by ``build_transforms`` maps
``(image uint8 [H, W, 3] RGB, boxes float [N, 4] xyxy, labels [N], iscrowd [N], masks uint8 [N, H, W] | None)``
to the same five values for the transformed image.

Rules:
- Resize: scale = min(min_size / short side, max_size / long side) (detectron2 / torchvision),
  output side = round(side * scale); ``min_size`` is drawn from the list per sample in training
  (multi-scale) and is the largest of the list in evaluation. Images use bilinear, masks nearest.
- Boxes are clipped to the image; a box whose clipped width or height is below 1 pixel (in the
  transformed image) is dropped together with its label, iscrowd flag and mask.
- Box coordinates go through albumentations' normalized float32 form: expect ~1e-4 px rounding.
- Randomness: albumentations keeps its own generator. A call with ``seed=`` (training: the
  sampler's per-sample seed, see detseg.data.sampler) draws from a generator seeded with it, so
  a sample's augmentation depends only on its position in the run, not on workers or restarts.
  Without a seed the generator is re-seeded from ``torch.initial_seed()`` whenever that changes,
  which gives every DataLoader worker its own stream and makes runs repeatable under
  ``torch.manual_seed``.
"""
from __future__ import annotations

import os
import random
from typing import Any, Sequence

import cv2
import numpy as np
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # its import would otherwise call the network
import albumentations as A  # noqa: E402


def resized_shape(hw: tuple[int, int], min_size: int, max_size: int) -> tuple[int, int]:
    """(h, w) after scaling the short side to ``min_size`` with the long side capped at ``max_size``."""
    h, w = hw
    scale = min(min_size / min(h, w), max_size / max(h, w))
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


class ResizeShortestEdge(A.DualTransform):
    """Resize by the shortest edge (a random choice of ``min_size``), long edge capped at ``max_size``."""

    def __init__(self, min_size: int | Sequence[int], max_size: int, p: float = 1.0):
        super().__init__(p=p)
        self.min_size = [min_size] if isinstance(min_size, int) else [int(s) for s in min_size]
        self.max_size = max_size

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        short = self.py_random.choice(self.min_size)
        return {"out_hw": resized_shape(params["shape"][:2], short, self.max_size)}

    def apply(self, img: np.ndarray, out_hw: tuple[int, int], **params: Any) -> np.ndarray:
        return self._resize(img, out_hw, cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, out_hw: tuple[int, int], **params: Any) -> np.ndarray:
        return self._resize(mask, out_hw, cv2.INTER_NEAREST)

    def apply_to_bboxes(self, bboxes: np.ndarray, **params: Any) -> np.ndarray:
        return bboxes  # albumentations keeps boxes normalized to [0, 1]: resizing leaves them unchanged

    @staticmethod
    def _resize(array: np.ndarray, out_hw: tuple[int, int], interpolation: int) -> np.ndarray:
        if array.shape[:2] == tuple(out_hw):
            return array
        return cv2.resize(array, (out_hw[1], out_hw[0]), interpolation=interpolation)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_size", "max_size")


class DetectionTransform:
    """Runs an albumentations pipeline on a detection target, keeping all per-box arrays aligned."""

    def __init__(self, transforms: list, require_masks: bool = False):
        bbox_params = A.BboxParams(format="pascal_voc", label_fields=["index"], clip=True,
                                   filter_invalid_bboxes=True, min_width=1.0, min_height=1.0)
        self.compose = A.Compose(transforms, bbox_params=bbox_params)
        self.require_masks = require_masks
        self._seed: int | None = None

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, iscrowd: np.ndarray,
                 masks: np.ndarray | None = None, seed: int | None = None,
                 sem_seg: np.ndarray | None = None) -> tuple:
        """The five inputs transformed; with ``sem_seg`` (a [H, W] label map, albumentations'
        ``mask``: nearest resize, flipped with the image) it comes back as a sixth value."""
        if self.require_masks and masks is None:
            raise ValueError("this transform was built with with_masks=True but got no masks")
        if seed is None:
            self._follow_torch_seed()
        else:
            self._set_random_state(seed)
        data = {"image": image, "bboxes": np.asarray(boxes, np.float32).reshape(-1, 4),
                "index": np.arange(len(boxes))}  # survives box drops: tells which rows were kept
        if masks is not None and len(masks):
            data["masks"] = masks  # albumentations rejects an empty mask stack
        if sem_seg is not None:
            data["mask"] = sem_seg
        out = self.compose(**data)
        keep = np.asarray(out["index"], np.int64)
        image = out["image"]
        if masks is not None:
            masks = out["masks"][keep] if len(masks) else np.zeros((0, *image.shape[:2]), np.uint8)
        boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        result = (image, boxes, np.asarray(labels)[keep], np.asarray(iscrowd)[keep], masks)
        return result if sem_seg is None else (*result, out["mask"])

    def _follow_torch_seed(self) -> None:
        """Re-seed from torch when its seed changed (new DataLoader worker, or torch.manual_seed)."""
        seed = torch.initial_seed()
        if seed != self._seed:
            self._set_random_state(seed)

    def _set_random_state(self, seed: int) -> None:
        self._seed = seed
        # one shared generator: per-transform copies of one seed would make their draws identical
        self.compose.set_random_state(np.random.default_rng(seed), random.Random(seed))


def build_transforms(train: bool, min_size: int | Sequence[int], max_size: int, flip_prob: float = 0.5,
                     color_jitter: float = 0.0, with_masks: bool = False) -> DetectionTransform:
    """Training: multi-scale resize, horizontal flip, optional colour jitter. Evaluation: resize only."""
    sizes = [min_size] if isinstance(min_size, int) else list(min_size)
    steps: list = [ResizeShortestEdge(sizes if train else max(sizes), max_size)]
    if train and flip_prob > 0:
        steps.append(A.HorizontalFlip(p=flip_prob))
    if train and color_jitter > 0:
        steps.append(A.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter,
                                   hue=min(color_jitter / 4, 0.5), p=1.0))
    return DetectionTransform(steps, require_masks=with_masks)

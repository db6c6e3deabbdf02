"""Image classification data in ImageFolder layout: ``root/<class name>/<image>``.

Classes are the sorted sub-folder names (label i = i-th name), as torchvision's ImageFolder,
whose folder scan this reuses. A sample is a dict::

    image        uint8 [3, H, W] after transforms
    image_id     int, the image's index in the sorted file list
    orig_size    (h, w) as decoded
    class_label  int64 scalar tensor, 0..K-1

A class folder without images is an error (its label would exist but never be trained); an
image that cannot be decoded is an error or skipped (``on_bad_sample``), as in the detection
datasets.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from detseg.data.datasets.base import read_rgb, split_sample_key
from detseg.data.errors import DatasetError, check_policy

# (image uint8 [H, W, 3], seed) -> image uint8 [h, w, 3]
ImageFn = Callable[[np.ndarray, "int | None"], np.ndarray]


def scan_image_folder(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(image path, label), ...] sorted by path); DatasetError for a bad layout."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder root does not exist (expected {root}/<class name>/*.jpg)")
    try:
        classes, class_to_idx = find_classes(str(root))
    except FileNotFoundError:
        raise DatasetError(f"{root}: no class sub-folders (expected {root}/<class name>/*.jpg)") from None
    items = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    counts = np.bincount([label for _, label in items], minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DatasetError(f"{root}: class folder(s) without images: {', '.join(str(root / c) for c in empty)} "
                           f"(image files end in {', '.join(IMG_EXTENSIONS)})")
    return classes, items


class ImageFolderClassification(Dataset):
    """``root/<class>/*`` images with their class index; ``category_ids`` / ``class_names`` as the
    detection datasets so the trainer counts classes the same way."""

    def __init__(self, root: str | Path, transforms: ImageFn | None = None, on_bad_sample: str = "error"):
        check_policy(on_bad_sample)
        self.root = Path(root)
        self.class_names, self.items = scan_image_folder(self.root)
        self.category_ids = list(range(len(self.class_names)))
        self.image_ids = list(range(len(self.items)))
        self.transforms = transforms
        self.on_bad_sample = on_bad_sample
        self.skipped: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """``key`` is an index, or ``(index, augmentation seed)`` from a seeding sampler."""
        idx, seed = split_sample_key(key)
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} images")
        for offset in range(len(self)):  # "skip": the next decodable image, deterministically
            at = (idx + offset) % len(self)
            image = self._read(at)
            if image is not None:
                return self._sample(at, image, seed)
        raise DatasetError(f"{self.root}: none of the {len(self)} images could be decoded")

    def _read(self, idx: int) -> np.ndarray | None:
        try:
            return read_rgb(self.items[idx][0])
        except DatasetError as exc:
            if self.on_bad_sample == "error":
                raise
            self.skipped["unreadable_image"] = self.skipped.get("unreadable_image", 0) + 1
            warnings.warn(f"skipping image: {exc}", stacklevel=3)
            return None

    def _sample(self, idx: int, image: np.ndarray, seed: int | None) -> dict:
        orig_size = image.shape[:2]
        if self.transforms is not None:
            image = self.transforms(image, seed)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
            "image_id": idx,
            "orig_size": (int(orig_size[0]), int(orig_size[1])),
            "class_label": torch.tensor(self.items[idx][1], dtype=torch.int64),
        }

    def label_of(self, image_id: int) -> int:
        return self.items[int(image_id)][1]

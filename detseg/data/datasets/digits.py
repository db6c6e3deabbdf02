"""The handwritten digits scikit-learn ships (1,797 images of 8x8, 10 classes; no download), written as
an ImageFolder dataset for LeNet-5: each image upsampled to ``size`` x ``size`` grey, split per class::

    {train,val}/<digit>/<index>.png

The split is stratified and seeded: the same arguments write the same files.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 8, 8] with values 0..16, labels [N])."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError("the digits dataset comes with scikit-learn: pip install scikit-learn "
                         "(or pip install 'detseg[digits]')") from None
    digits = load_digits()
    return digits.images, digits.target


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the validation images: ``val_fraction`` of each class, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        is_val[members[: int(round(val_fraction * len(members)))]] = True
    return is_val


def to_picture(image: np.ndarray, size: int) -> np.ndarray:
    """8x8 ink levels 0..16 -> uint8 [size, size], white digit on black, bicubic upsampling."""
    grey = (image.astype(np.float32) * (255.0 / 16.0)).astype(np.float32)
    return np.clip(cv2.resize(grey, (size, size), interpolation=cv2.INTER_CUBIC), 0, 255).round().astype(np.uint8)


def write_digits(out_dir: str | Path, size: int = 32, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Write the split; returns ``{split: {digit: count}}``."""
    images, labels = load_sklearn_digits()
    is_val = stratified_split(labels, val_fraction, seed)
    counts: dict[str, dict[str, int]] = {"train": {}, "val": {}}
    for index, (image, label) in enumerate(zip(images, labels)):
        split = "val" if is_val[index] else "train"
        folder = Path(out_dir) / split / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{index:04d}.png"), to_picture(image, size))
        counts[split][str(int(label))] = counts[split].get(str(int(label)), 0) + 1
    return counts

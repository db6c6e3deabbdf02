"""What every detection dataset shares: image decoding, the sample dict, bad-image handling.

A sample is a dict::

    image     uint8 [3, H, W] after transforms (may be a non-contiguous view of an HWC array)
    image_id  int
    orig_size (h, w) of the image as decoded from disk (after EXIF orientation)
    boxes     float32 [N, 4] xyxy, absolute pixels of ``image``
    labels    int64 [N], contiguous 0..K-1
    iscrowd   bool [N]
    masks     uint8 [N, H, W], only for datasets built with ``with_masks=True``
    sem_seg   int64 [H, W] (0 = background, c + 1 = class c, 255 = ignore), only for semantic
              datasets (``with_sem_seg``), which implement ``_load_sem_seg(idx, (h, w))``

Subclasses provide ``image_ids``, ``get_image_info(idx)`` and ``_load_target(idx, (h, w))``.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from detseg.data.errors import DatasetError, check_policy
from detseg.data.safety import (TRANSPOSED_ORIENTATIONS, displayed_size, exif_orientation, pixel_limit_message,
                                too_many_pixels)

# (image, boxes, labels, iscrowd, masks, seed=None) -> the first five, see detseg.data.transforms
TransformFn = Callable[..., tuple]
Target = tuple[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"]


def read_rgb(path: str) -> np.ndarray:
    """Decode any PIL-readable image as uint8 RGB [H, W, 3], EXIF orientation applied.

    The pixel count is checked on the header before decoding (decompression bombs).
    High bit depths (16-bit PNG) are scaled to 8 bit, never clipped.
    """
    with _decoding(path), Image.open(path) as img:
        _check_pixels(path, img)
        return _to_rgb(ImageOps.exif_transpose(img))


def read_rgb_reduced(path: str, hw: tuple[int, int], needed_hw: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """``read_rgb``, but a JPEG at least twice ``needed_hw`` (displayed h, w) is decoded at 1/2, 1/4 or 1/8
    of its size by libjpeg (PIL's draft mode), never below ``needed_hw``: a 12 Mpx photograph resized to
    a few hundred pixels decodes about 4x faster. ``hw`` is the annotated displayed size; a header that
    disagrees with it is decoded in full and left to the caller's size check. Returns (image, reduced)."""
    with _decoding(path), Image.open(path) as img:
        _check_pixels(path, img)
        if displayed_size(img) != tuple(hw) or img.format != "JPEG":
            return _to_rgb(ImageOps.exif_transpose(img)), False
        transposed = exif_orientation(img) in TRANSPOSED_ORIENTATIONS
        need_h, need_w = needed_hw[::-1] if transposed else needed_hw
        img.draft("RGB", (int(need_w), int(need_h)))
        image = _to_rgb(ImageOps.exif_transpose(img))
        return image, image.shape[:2] != tuple(hw)


@contextlib.contextmanager
def _decoding(path: str):
    """PIL's many failure types as one DatasetError naming the file."""
    try:
        yield
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: cannot decode image ({exc})") from exc


def _check_pixels(path: str, img: Image.Image) -> None:
    if too_many_pixels(img.size[1], img.size[0]):
        raise DatasetError(f"{path}: {pixel_limit_message(img.size[1], img.size[0])}")


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode.startswith("I") or img.mode == "F":
        gray = _high_depth_to_uint8(img)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # PIL warns when a transparent palette goes straight to RGB
    return np.array(img.convert("RGB"))


def _high_depth_to_uint8(img: Image.Image) -> np.ndarray:
    """PIL's own convert("RGB") clips 16-bit values at 255 (a white image); scale instead."""
    values = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        top = 1.0 if values.size and np.nanmax(values) <= 1.0 else 255.0
    else:  # "I;16*" is 16 bit; PIL also opens 16-bit PNGs as 32-bit "I" holding 0..65535
        top = 65535.0 if img.mode.startswith("I;16") or (values.size and values.max() > 255) else 255.0
    return np.clip(np.round(np.nan_to_num(values) * (255.0 / top)), 0, 255).astype(np.uint8)


def split_sample_key(key: int | tuple[int, int]) -> tuple[int, int | None]:
    """A sampler's key -> (index, augmentation seed or None); see detseg.data.sampler."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), None


def clip_boxes_(boxes: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Clip xyxy boxes to an image of size (h, w), in place."""
    np.clip(boxes[:, 0::2], 0, hw[1], out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, hw[0], out=boxes[:, 1::2])
    return boxes


class DetectionDataset(Dataset):
    """Turns (image file, target arrays) into the sample dict; applies ``on_bad_sample`` to images."""

    image_ids: list[int]
    with_masks: bool = False
    with_sem_seg: bool = False

    def __init__(self, source: str, transforms: TransformFn | None, on_bad_sample: str):
        check_policy(on_bad_sample)
        self.source = source  # named in error messages
        self.transforms = transforms
        self.on_bad_sample = on_bad_sample
        # kind -> count; __getitem__ adds decode failures here (per process: DataLoader workers keep their own)
        self.skipped: dict[str, int] = {}
        # training sets this: an undecodable image is then named in the next sample's "skipped_images"
        # (counted once at the end of training) instead of a warning printed inside the progress bar
        self.quiet_skips = False
        # the largest (h, w) the transforms resize an image of a given size to, as a function of its (h, w),
        # set by detseg.data.build for box-only data: large JPEGs are then decoded at a reduced size
        self.needed_size: Callable[[tuple[int, int]], tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def get_image_info(self, idx: int) -> tuple[str, tuple[int, int]]:
        """(image file path, (h, w)) without decoding pixels."""
        raise NotImplementedError

    def _load_target(self, idx: int, hw: tuple[int, int]) -> Target:
        """boxes float32 [N, 4] xyxy clipped to hw, labels int64 [N], iscrowd bool [N], masks or None."""
        raise NotImplementedError

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """``key`` is an index, or ``(index, augmentation seed)`` from a seeding sampler."""
        idx, seed = split_sample_key(key)
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} images")
        idx %= len(self)
        bad: list[str] = []
        for offset in range(len(self)):  # "skip": the next decodable image, deterministically
            image = self._read_image((idx + offset) % len(self), bad)
            if image is not None:
                sample = self._make_sample((idx + offset) % len(self), image, seed)
                return {**sample, "skipped_images": bad} if bad else sample
        raise DatasetError(f"{self.source}: none of the {len(self)} images could be decoded")

    def _read_image(self, idx: int, bad: list[str]) -> np.ndarray | None:
        path, hw = self.get_image_info(idx)
        try:
            image, reduced = self._decode(path, hw)
        except DatasetError as exc:
            return self._bad_image("unreadable_image", exc, bad)
        if image.shape[:2] != tuple(hw) and not reduced:
            msg = f"{path}: decoded size (h, w) = {image.shape[:2]} differs from the annotated {tuple(hw)}"
            return self._bad_image("size_mismatch", DatasetError(f"{self.source}: {msg}"), bad)
        return image

    def _decode(self, path: str, hw: tuple[int, int]) -> tuple[np.ndarray, bool]:
        """(image, whether it was decoded at a reduced size on purpose)."""
        needed = self.needed_size(hw) if self.needed_size is not None else None
        reducible = needed is not None and not (self.with_masks or self.with_sem_seg)
        if reducible and 2 * needed[0] <= hw[0] and 2 * needed[1] <= hw[1]:
            return read_rgb_reduced(path, hw, needed)
        return read_rgb(path), False

    def _bad_image(self, kind: str, exc: DatasetError, bad: list[str]) -> None:
        if self.on_bad_sample == "error":
            raise exc
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        bad.append(f"{kind}: {exc}")
        if not self.quiet_skips:
            warnings.warn(f"skipping image: {exc}", stacklevel=4)
        return None

    def _make_sample(self, idx: int, image: np.ndarray, seed: int | None = None) -> dict:
        orig_size = tuple(self.get_image_info(idx)[1])  # the annotated size, also for a reduced decode
        boxes, labels, iscrowd, masks = self._load_target(idx, orig_size)
        if image.shape[:2] != orig_size:  # decoded at 1/2, 1/4 or 1/8: boxes follow (box-only data)
            fy, fx = image.shape[0] / orig_size[0], image.shape[1] / orig_size[1]
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([fx, fy, fx, fy], np.float32)
        sem_seg = self._load_sem_seg(idx, orig_size) if self.with_sem_seg else None
        if self.transforms is not None and sem_seg is not None:
            image, boxes, labels, iscrowd, masks, sem_seg = self.transforms(
                image, boxes, labels, iscrowd, masks, seed=seed, sem_seg=sem_seg)
        elif self.transforms is not None:
            image, boxes, labels, iscrowd, masks = self.transforms(image, boxes, labels, iscrowd, masks, seed=seed)
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
            "image_id": int(self.image_ids[idx]),
            "orig_size": (int(orig_size[0]), int(orig_size[1])),
            "boxes": torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4)),
            "labels": torch.from_numpy(np.asarray(labels, np.int64)),
            "iscrowd": torch.from_numpy(np.asarray(iscrowd, bool)),
        }
        if self.with_masks:
            sample["masks"] = torch.from_numpy(np.ascontiguousarray(masks, np.uint8))
        if sem_seg is not None:
            sample["sem_seg"] = torch.from_numpy(np.ascontiguousarray(sem_seg, np.int64))
        return sample

    def _load_sem_seg(self, idx: int, hw: tuple[int, int]) -> np.ndarray:
        """uint8 [h, w] label map of image ``idx`` at its original size (semantic datasets)."""
        raise NotImplementedError

    def original_sem_seg(self, image_id: int) -> np.ndarray:
        """The label map of ``image_id`` as stored (original size), for evaluation."""
        if not hasattr(self, "_index_of_id"):
            self._index_of_id = {int(i): k for k, i in enumerate(self.image_ids)}
        idx = self._index_of_id[int(image_id)]
        return self._load_sem_seg(idx, self.get_image_info(idx)[1])

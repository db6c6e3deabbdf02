"""Crops of the synthetic shapes, one object per image, for backbone pre-training (ImageFolder layout).

Images are rendered by the shapes generator (detseg.data.datasets.shapes.render_image) from a
random stream of their own, so no crop comes from an image of the detection set made with the
same seed. Each visible object is cut out as a square around its visible box, enlarged by
``context`` (0.5: the side is 1.5 x the box's longer side; parts outside the image replicate the
border), resized to ``crop_size`` and written as::

    {train,val}/<class name>/<image index>_<object index>.jpg

Every image is rendered from (seed, stream, split, index) alone: the same arguments give
byte-identical files whatever the number of worker processes.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from detseg.data.datasets.shapes import CLASS_NAMES, JPEG_QUALITY, MIN_OBJECT_SIDE, SPLITS, render_image

STREAM = 1  # the detection set uses no stream entry; this keeps the two sets' images apart


def crop_object(image: np.ndarray, visible: np.ndarray, context: float, crop_size: int) -> np.ndarray:
    """The square around ``visible``'s box, its side (1 + context) x the box's longer side, resized."""
    ys, xs = np.nonzero(visible)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = int(round(max(x1 - x0, y1 - y0) * (1 + context)))
    left, top = int(round((x0 + x1 - side) / 2)), int(round((y0 + y1 - side) / 2))
    h, w = image.shape[:2]
    pads = (max(0, -top), max(0, top + side - h), max(0, -left), max(0, left + side - w))
    padded = cv2.copyMakeBorder(image, *pads, cv2.BORDER_REPLICATE)
    crop = padded[top + pads[0]: top + pads[0] + side, left + pads[2]: left + pads[2] + side]
    interpolation = cv2.INTER_AREA if side > crop_size else cv2.INTER_LINEAR
    return cv2.resize(crop, (crop_size, crop_size), interpolation=interpolation)


def _render_and_crop(job: tuple) -> list[int]:
    """Render image ``index`` of ``split``, write its object crops; returns their labels."""
    out_dir, split, index, seed, min_size, max_size, context, crop_size = job
    rng = np.random.default_rng([seed, STREAM, SPLITS.index(split), index])
    image, objects = render_image(rng, min_size, max_size)
    for k, obj in enumerate(objects):
        crop = crop_object(image, obj.visible, context, crop_size)
        ok, data = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok, "JPEG encoding failed"
        (Path(out_dir) / split / CLASS_NAMES[obj.label] / f"{index + 1:06d}_{k}.jpg").write_bytes(data.tobytes())
    return [obj.label for obj in objects]


def generate_shape_crops(out_dir: str | os.PathLike, num_train: int = 1500, num_val: int = 300, seed: int = 0,
                         crop_size: int = 64, context: float = 0.5, min_size: int = 160, max_size: int = 256,
                         workers: int | None = None) -> dict[str, dict[str, int]]:
    """Write the crops of ``num_train`` / ``num_val`` rendered images; returns crops per class and split.

    ``workers`` (default: all CPU cores) only changes speed, never the output.
    """
    if not 2 * MIN_OBJECT_SIDE <= min_size <= max_size:
        raise ValueError(f"need {2 * MIN_OBJECT_SIDE} <= min_size <= max_size, got {min_size}, {max_size}")
    if crop_size < 8 or context < 0:
        raise ValueError(f"need crop_size >= 8 and context >= 0, got {crop_size}, {context}")
    out_dir = Path(out_dir)
    workers = os.cpu_count() or 1 if workers is None else workers
    summary = {}
    for split, count in zip(SPLITS, (num_train, num_val)):
        for name in CLASS_NAMES:
            (out_dir / split / name).mkdir(parents=True, exist_ok=True)
        jobs = [(str(out_dir), split, i, seed, min_size, max_size, context, crop_size) for i in range(count)]
        if workers <= 1 or count < 64:  # process start-up costs more than it saves on tiny sets
            labels = [_render_and_crop(job) for job in jobs]
        else:
            with ProcessPoolExecutor(workers) as pool:
                labels = list(pool.map(_render_and_crop, jobs, chunksize=32))
        counts = np.bincount([label for image in labels for label in image], minlength=len(CLASS_NAMES))
        summary[split] = {name: int(n) for name, n in zip(CLASS_NAMES, counts)}
    return summary

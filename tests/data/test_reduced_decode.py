"""Large JPEGs are decoded at 1/2, 1/4 or 1/8 of their size when the transforms shrink them anyway
(libjpeg's DCT scaling through PIL's draft mode): the sample matches a full decode, only faster."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from detseg.config import load_config
from detseg.data.build import build_dataset
from detseg.data.errors import DatasetError

CONFIG = "configs/faster_rcnn/shapes.yaml"  # test size 192 (long <= 320), training 160-224


def _photo(h: int, w: int, exif: bytes | None = None) -> bytes:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    image = np.stack([np.sin(9 * x) * np.cos(7 * y), np.cos(5 * x + y), x * y], 2) * 120 + 128
    buf = io.BytesIO()
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=92,
                                                                **({"exif": exif} if exif else {}))
    return buf.getvalue()


def _dataset(tmp_path, file_hw, annotated_hw, train=False, exif=None):
    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "img" / "p.jpg").write_bytes(_photo(*file_hw, exif))
    data = {"images": [{"id": 1, "file_name": "p.jpg", "height": annotated_hw[0], "width": annotated_hw[1]}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [120, 90, 160, 100], "area": 1,
                             "iscrowd": 0}]}
    (tmp_path / "a.json").write_text(json.dumps(data))
    paths = [f"data.{s}.{k}={tmp_path / v}" for s in ("train", "val") for k, v in (("ann_file", "a.json"),
                                                                                  ("img_dir", "img"))]
    cfg = load_config(CONFIG, [*paths, "data.on_bad_sample=error"])
    return build_dataset(cfg.data, "train" if train else "val", train=train)


def _full_decode(dataset, key):
    needed, dataset.needed_size = dataset.needed_size, None
    try:
        return dataset[key]
    finally:
        dataset.needed_size = needed


def test_large_jpeg_is_decoded_reduced_and_gives_the_same_sample(tmp_path):
    ds = _dataset(tmp_path, (1600, 2000), (1600, 2000))
    image, reduced = ds._decode(str(tmp_path / "img" / "p.jpg"), (1600, 2000))
    assert reduced and image.shape == (200, 250, 3)  # 1/8: still above the 192 x 240 the resize needs
    sample, full = ds[0], _full_decode(ds, 0)
    assert sample["image"].shape == full["image"].shape == (3, 192, 240)
    assert sample["orig_size"] == full["orig_size"] == (1600, 2000)
    np.testing.assert_allclose(sample["boxes"].numpy(), full["boxes"].numpy(), atol=1e-3)
    diff = np.abs(sample["image"].numpy().astype(int) - full["image"].numpy().astype(int))
    assert diff.mean() < 3.0, diff.mean()


def test_training_samples_match_under_the_same_augmentation_seed(tmp_path):
    ds = _dataset(tmp_path, (1600, 2000), (1600, 2000), train=True)
    for seed in (1, 2, 3):
        sample, full = ds[(0, seed)], _full_decode(ds, (0, seed))
        assert sample["image"].shape == full["image"].shape
        np.testing.assert_allclose(sample["boxes"].numpy(), full["boxes"].numpy(), atol=0.5)


def test_exif_rotated_large_jpeg_keeps_its_boxes(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 2000 wide x 1600 high, displayed 1600 wide x 2000 high
    ds = _dataset(tmp_path, (1600, 2000), (2000, 1600), exif=exif.tobytes())
    assert ds._decode(str(tmp_path / "img" / "p.jpg"), (2000, 1600))[1]
    sample, full = ds[0], _full_decode(ds, 0)
    assert sample["image"].shape == full["image"].shape and sample["orig_size"] == (2000, 1600)
    np.testing.assert_allclose(sample["boxes"].numpy(), full["boxes"].numpy(), atol=1e-3)


def test_a_file_of_another_size_is_still_a_size_mismatch(tmp_path):
    ds = _dataset(tmp_path, (800, 1000), (1600, 2000))  # exactly half: must not pass as a reduced decode
    with pytest.raises(DatasetError, match="differs from the annotated"):
        ds[0]


def test_small_images_and_cropping_augmentations_decode_in_full(tmp_path):
    ds = _dataset(tmp_path, (300, 400), (300, 400))
    assert ds._decode(str(tmp_path / "img" / "p.jpg"), (300, 400))[1] is False  # not twice the 192 needed
    cfg = load_config(CONFIG, ["data.augment=ssd", "data.fixed_size=[128,128]"])
    from detseg.data.build import _needed_size

    assert _needed_size(cfg.data, True) is None

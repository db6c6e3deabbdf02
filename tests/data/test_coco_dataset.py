from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from detseg.data.datasets.coco import CocoDetection
from detseg.data.errors import DatasetError


# pycocotools' mask decoding trips a numpy-2 DeprecationWarning inside its C extension: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_label_space_from_noncontiguous_ids(coco_case):
    ds = CocoDetection(coco_case["ann_file"], coco_case["img_dir"])
    assert ds.category_ids == [3, 7, 42]
    assert ds.class_names == ["cat", "bird", "dog"]
    assert ds.image_ids == [10, 20, 30, 40]
    assert len(ds) == 4
    sample = ds[0]
    assert sample["labels"].tolist() == [0, 1, 2]
    assert sample["iscrowd"].tolist() == [False, False, True]


def test_explicit_label_space(coco_case):
    ds = CocoDetection(coco_case["ann_file"], coco_case["img_dir"], category_ids=list(range(1, 91)))
    assert ds[0]["labels"].tolist() == [2, 6, 41]
    assert ds.class_names[2] == "cat" and ds.class_names[0] == "category_1"
    with pytest.raises(DatasetError, match="not in the label space"):
        CocoDetection(coco_case["ann_file"], coco_case["img_dir"], category_ids=[3, 7])


def test_sample_shapes_dtypes_and_boxes(coco_case):
    sample = CocoDetection(coco_case["ann_file"], coco_case["img_dir"], with_masks=True)[0]
    assert sample["image"].shape == (3, 30, 40) and sample["image"].dtype == torch.uint8
    assert sample["image_id"] == 10 and sample["orig_size"] == (30, 40)
    assert sample["boxes"].dtype == torch.float32
    expected = [[2, 2, 20, 12], [25, 5, 37, 15], [2, 20, 12, 28]]
    assert torch.equal(sample["boxes"], torch.tensor(expected, dtype=torch.float32))
    assert sample["labels"].dtype == torch.int64 and sample["iscrowd"].dtype == torch.bool
    assert sample["masks"].shape == (3, 30, 40) and sample["masks"].dtype == torch.uint8


def test_masks_match_pycocotools(coco_case):
    ds = CocoDetection(coco_case["ann_file"], coco_case["img_dir"], with_masks=True)
    for idx in range(len(ds)):
        anns = ds.coco.imgToAnns[ds.image_ids[idx]]
        expected = np.stack([ds.coco.annToMask(a) for a in anns]) if anns else np.zeros((0,) + ds[idx]["orig_size"])
        assert np.array_equal(ds[idx]["masks"].numpy(), expected)
    masks = ds[0]["masks"]
    assert masks[1].sum() == 120 and masks[2].sum() == 80  # compressed RLE, uncompressed crowd RLE
    assert masks[0][:, :11].sum() > 0 and masks[0][:, 12:].sum() > 0  # both polygon parts


def test_image_without_annotations_has_empty_targets(coco_case):
    sample = CocoDetection(coco_case["ann_file"], coco_case["img_dir"], with_masks=True)[1]
    assert sample["boxes"].shape == (0, 4) and sample["boxes"].dtype == torch.float32
    assert sample["labels"].shape == (0,) and sample["labels"].dtype == torch.int64
    assert sample["iscrowd"].shape == (0,) and sample["iscrowd"].dtype == torch.bool
    assert sample["masks"].shape == (0, 24, 20) and sample["masks"].dtype == torch.uint8


def test_grayscale_rgba_palette_become_rgb(coco_case):
    ds = CocoDetection(coco_case["ann_file"], coco_case["img_dir"])
    gray, rgba, palette = ds[1]["image"], ds[2]["image"], ds[3]["image"]
    assert gray.shape == (3, 24, 20) and (gray == 77).all()
    assert rgba.shape == (3, 16, 18) and rgba[0].eq(200).all() and rgba[1:].eq(0).all()
    assert palette.shape == (3, 12, 14) and palette[:, 0, 0].tolist() == [10, 20, 30]


def test_box_partly_outside_is_clipped(coco_case):
    sample = CocoDetection(coco_case["ann_file"], coco_case["img_dir"])[2]
    assert sample["boxes"].tolist() == [[10, 4, 18, 16]]


def test_exif_orientation_is_applied(coco_case):
    image = Image.fromarray(np.zeros((10, 20, 3), np.uint8))  # stored 20 wide, 10 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: displayed 10 wide, 20 high
    image.save(coco_case["img_dir"] / "exif.jpg", exif=exif)
    data = dict(coco_case["data"], images=[{"id": 1, "file_name": "exif.jpg", "height": 20, "width": 10}],
                annotations=[])
    ds = CocoDetection(coco_case["write"](data), coco_case["img_dir"])
    assert ds[0]["image"].shape == (3, 20, 10) and ds[0]["orig_size"] == (20, 10)


def test_get_image_info_and_negative_index(coco_case):
    ds = CocoDetection(coco_case["ann_file"], coco_case["img_dir"])
    path, hw = ds.get_image_info(2)
    assert path.endswith("rgba.png") and hw == (16, 18)
    assert ds[-1]["image_id"] == 40
    with pytest.raises(IndexError):
        ds[4]


def test_shapes_dataset_loads(shapes_paths):
    ds = CocoDetection(shapes_paths["val_json"], shapes_paths["val_dir"], with_masks=True)
    assert len(ds) == 6 and ds.class_names[0] == "circle"
    for idx in range(len(ds)):
        sample = ds[idx]
        h, w = sample["orig_size"]
        assert sample["image"].shape == (3, h, w)
        assert 1 <= len(sample["boxes"]) <= 6
        assert (sample["masks"].flatten(1).sum(1) > 0).all()

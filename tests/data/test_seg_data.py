"""Semantic data: shapes PNGs, VOC SegmentationClass reading, COCO rendering, transforms, collate."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detseg.config import load_config
from detseg.data.build import build_dataset
from detseg.data.check import check_voc_semantic
from detseg.data.collate import collate
from detseg.data.datasets.coco import CocoDetection, render_semantic
from detseg.data.datasets.shapes import CLASS_NAMES
from detseg.data.datasets.voc_seg import VOCSegmentation
from detseg.data.errors import DatasetError
from detseg.data.palette import read_label_png, voc_palette, write_label_png
from detseg.data.transforms import build_transforms


def _voc_seg(shapes_paths, split="train", transforms=None):
    return VOCSegmentation(shapes_paths["voc_root"], split, list(CLASS_NAMES), transforms)


def test_shapes_writes_voc_palette_pngs(shapes_paths):
    voc = shapes_paths["voc_root"]
    for split in ("train", "val"):
        ids = (voc / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
        assert ids == (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        for voc_id in ids:
            with Image.open(voc / "SegmentationClass" / f"{voc_id}.png") as png:
                assert png.mode == "P"
                assert np.array_equal(np.array(png.getpalette()[:21], np.uint8), voc_palette()[:7].reshape(-1))
            with Image.open(voc / "JPEGImages" / f"{voc_id}.jpg") as jpg:
                assert png.size == jpg.size


def test_shapes_pngs_equal_the_coco_masks_rendered(shapes_paths):
    """Two independent paths to one truth: the generator's maps and pycocotools on its polygons."""
    voc = _voc_seg(shapes_paths)
    coco = CocoDetection(shapes_paths["train_json"], shapes_paths["train_dir"], with_sem_seg=True)
    assert len(voc) == len(coco)
    objects = 0
    for idx, image_id in enumerate(coco.image_ids):
        png = voc.original_sem_seg(idx)
        rendered = coco.original_sem_seg(image_id)
        assert np.array_equal(png, rendered), image_id
        objects += len(np.unique(png)) - 1
        anns = coco.coco.imgToAnns[image_id]
        assert set(np.unique(png)) - {0} == {a["category_id"] for a in anns}  # label + 1 = category id here
    assert objects > 0


def test_coco_render_crowd_is_ignore_and_small_objects_stay_on_top():
    square = lambda x0, y0, x1, y1: np.pad(np.ones((y1 - y0, x1 - x0), np.uint8), ((y0, 10 - y1), (x0, 10 - x1)))
    anns = [
        {"id": 1, "category_id": 7, "area": 4, "mask": square(2, 2, 4, 4)},                # small, listed first
        {"id": 2, "category_id": 3, "area": 36, "mask": square(0, 0, 6, 6)},               # large
        {"id": 3, "category_id": 3, "area": 50, "iscrowd": 1, "mask": square(5, 5, 10, 10)},
    ]
    out = render_semantic(anns, lambda a: a["mask"], {3: 0, 7: 1}, (10, 10))
    assert out[3, 3] == 2 and out[0, 0] == 1 and out[1, 5] == 1  # small object over the large one
    assert out[5, 5] == 1  # an object on a crowd region keeps its label
    assert out[8, 8] == 255 and out[9, 0] == 0


def test_sample_sem_seg_follows_resize_and_flip(shapes_paths):
    voc = _voc_seg(shapes_paths)
    flip = build_transforms(True, [96], 1000, flip_prob=1.0)
    flipped = _voc_seg(shapes_paths, transforms=flip)
    for idx in range(3):
        original = voc.original_sem_seg(idx)
        sample = flipped[idx]
        labels = sample["sem_seg"]
        assert labels.dtype == torch.int64 and labels.shape == sample["image"].shape[1:]
        assert min(labels.shape) == 96
        # nearest resize of the flipped map: every output pixel copies some input pixel's label
        expected = np.asarray(Image.fromarray(original[:, ::-1].copy()).resize(labels.shape[::-1], Image.NEAREST))
        assert set(np.unique(labels.numpy())) <= set(np.unique(original))
        assert (labels.numpy() == expected).mean() > 0.97


def test_collate_pads_sem_seg_with_ignore(shapes_paths):
    dataset = _voc_seg(shapes_paths, transforms=build_transforms(False, 64, 200, 0.0))
    samples = [dataset[0], dataset[1]]
    batch = collate(samples)
    assert batch.sem_seg.shape == (2, *batch.images.shape[-2:])
    for i, sample in enumerate(samples):
        h, w = sample["sem_seg"].shape
        assert torch.equal(batch.sem_seg[i, :h, :w], sample["sem_seg"])
        assert (batch.sem_seg[i, h:] == 255).all() and (batch.sem_seg[i, :, w:] == 255).all()


def test_bad_label_pngs_are_reported(tmp_path, shapes_paths):
    import shutil

    root = tmp_path / "voc"
    shutil.copytree(shapes_paths["voc_root"], root)
    ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    labels = read_label_png(root / "SegmentationClass" / f"{ids[0]}.png")
    labels[0, 0] = 9  # only 6 classes
    write_label_png(root / "SegmentationClass" / f"{ids[0]}.png", labels)
    Image.new("RGB", (8, 8)).save(root / "SegmentationClass" / f"{ids[1]}.png")
    (root / "SegmentationClass" / f"{ids[2]}.png").unlink()
    with pytest.raises(DatasetError, match="does not exist"):
        VOCSegmentation(root, "val", list(CLASS_NAMES))
    with pytest.warns(UserWarning, match="missing_file=1"):
        dataset = VOCSegmentation(root, "val", list(CLASS_NAMES), on_bad_sample="skip")
    with pytest.raises(DatasetError, match=r"label values \[9\]"):
        dataset.original_sem_seg(0)
    with pytest.raises(DatasetError, match="mode RGB"):
        dataset.original_sem_seg(1)
    with pytest.raises(ValueError, match="data.classes"):
        VOCSegmentation(root, "val", None)
    report = check_voc_semantic(root, "val", list(CLASS_NAMES))  # what training checks before it starts
    # the 8x8 RGB stand-in is also the wrong size for its image
    assert set(report.errors) == {"missing_file", "size_mismatch"} and report.num_images == len(ids) - 1


def test_build_dataset_follows_data_task(shapes_paths):
    cfg = load_config("configs/fcn/shapes_8s.yaml", [f"data.val.root={shapes_paths['voc_root']}"])
    dataset = build_dataset(cfg.data, "val", train=False)
    assert isinstance(dataset, VOCSegmentation) and dataset.class_names == list(CLASS_NAMES)
    assert min(dataset[0]["sem_seg"].shape) == cfg.data.min_size_test
    coco = load_config("configs/fcn/shapes_8s.yaml", ["data.format=coco", f"data.val.ann_file={shapes_paths['val_json']}",
                                                      f"data.val.img_dir={shapes_paths['val_dir']}"])
    assert "sem_seg" in build_dataset(coco.data, "val", train=False)[0]
    coco.data.task = "detection"
    assert "sem_seg" not in build_dataset(coco.data, "val", train=False)[0]
    coco.data.task = "panoptic"
    with pytest.raises(ValueError, match="data.task"):
        build_dataset(coco.data, "val", train=False)

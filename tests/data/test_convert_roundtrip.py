"""Dataset conversion round trips (COCO <-> VOC <-> YOLO) on the tiny shapes set and a hand-made COCO file."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from detseg.data.convert import convert, read_dataset
from detseg.data.datasets.coco import CocoDetection


def _masks(records, split: int = 0) -> list[list[np.ndarray]]:
    out = []
    for image in records.splits[split].images:
        hw = (image.height, image.width)
        out.append([mask_utils.decode(mask_utils.merge(
            mask_utils.frPyObjects(inst.polygons, *hw) if inst.polygons else
            [mask_utils.frPyObjects(inst.rle, *hw) if isinstance(inst.rle["counts"], list) else inst.rle]))
            for inst in image.instances])
    return out


def _boxes(records, split: int) -> list[np.ndarray]:
    images = records.splits[split].images
    return [np.array([i.box for i in image.instances], np.float64).reshape(-1, 4) for image in images]


def _named_labels(records, split: int) -> list[list[str]]:
    return [[records.class_names[i.label] for i in image.instances] for image in records.splits[split].images]


def _assert_same_images(a, b):
    for sa, sb in zip(a.splits, b.splits, strict=True):
        assert len(sa.images) == len(sb.images)
        for ia, ib in zip(sa.images, sb.images):
            assert (ia.height, ia.width) == (ib.height, ib.width)
            assert ia.source.read_bytes() == ib.source.read_bytes()  # copied, not re-encoded


def test_coco_voc_coco_keeps_boxes_classes_and_order(shapes_root, tmp_path, tree_hashes):
    before = tree_hashes(shapes_root)
    convert("coco", "voc", shapes_root, tmp_path / "voc")
    convert("voc", "coco", tmp_path / "voc", tmp_path / "coco")
    assert tree_hashes(shapes_root) == before  # the input is never modified
    original, back = read_dataset("coco", shapes_root), read_dataset("coco", tmp_path / "coco")
    assert back.class_names == original.class_names and back.category_ids == original.category_ids
    _assert_same_images(original, back)
    for split in (0, 1):
        assert _named_labels(back, split) == _named_labels(original, split)
        for a, b in zip(_boxes(original, split), _boxes(back, split)):
            np.testing.assert_array_equal(a, b)  # shapes boxes lie on whole pixels: exact in VOC
    # train/000001.jpg and val/000001.jpg share VOC's one image folder: the second gets the split prefix
    assert (tmp_path / "voc" / "ImageSets/Main/val.txt").read_text().split()[0] == "val_000001"


def test_fractional_boxes_move_at_most_half_a_pixel_and_crowd_becomes_difficult(coco_case, tmp_path):
    data = coco_case["data"]
    data["annotations"][0]["bbox"] = [2.3, 2.7, 17.6, 9.2]
    ann_file = coco_case["write"](data)
    convert("coco", "voc", ann_file, tmp_path / "voc", image_dir=coco_case["img_dir"])
    xml = ET.parse(tmp_path / "voc" / "Annotations" / "rgb.xml").getroot()
    first = xml.find("object/bndbox")
    # x1 = 2.3 -> xmin = round(2.3) + 1 = 3 (1-based); x2 = 19.9 -> xmax = 20 (inclusive)
    assert [int(first.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")] == [3, 4, 20, 12]
    assert [o.findtext("difficult") for o in xml.iter("object")] == ["0", "0", "1"]  # the crowd region
    original = read_dataset("coco", ann_file, image_dir=coco_case["img_dir"])
    back = read_dataset("voc", tmp_path / "voc")
    assert back.class_names == original.class_names  # classes.txt keeps the label order (cat, bird, dog)
    _assert_same_images(original, back)
    for a, b in zip(_boxes(original, 0), _boxes(back, 0)):
        assert np.abs(a - b).max(initial=0) <= 0.5
    crowd = [[i.iscrowd for i in image.instances] for image in back.splits[0].images]
    assert crowd == [[i.iscrowd for i in image.instances] for image in original.splits[0].images]


def test_coco_yolo_coco_keeps_boxes_classes_and_polygon_masks(shapes_root, tmp_path):
    convert("coco", "yolo", shapes_root, tmp_path / "yolo")
    convert("yolo", "coco", tmp_path / "yolo", tmp_path / "coco")
    original, back = read_dataset("coco", shapes_root), read_dataset("coco", tmp_path / "coco")
    assert back.class_names == original.class_names
    _assert_same_images(original, back)
    for split in (0, 1):
        assert _named_labels(back, split) == _named_labels(original, split)
        for masks_a, masks_b in zip(_masks(original, split), _masks(back, split), strict=True):
            for a, b in zip(masks_a, masks_b, strict=True):
                np.testing.assert_array_equal(a, b)
        # a YOLO-seg box is the polygon's extent; shapes polygons trace pixel edges of the upsampled
        # mask, so the extent is the COCO box less half a pixel on the right and bottom
        for image, boxes in zip(original.splits[split].images, _boxes(back, split)):
            extent = [[min(min(p[0::2]) for p in i.polygons), min(min(p[1::2]) for p in i.polygons),
                       max(max(p[0::2]) for p in i.polygons), max(max(p[1::2]) for p in i.polygons)]
                      for i in image.instances]
            atol = 1e-6 * max(image.width, image.height)
            np.testing.assert_allclose(boxes, np.array(extent).reshape(-1, 4), rtol=0, atol=atol)
    # the converted json is valid training data with masks
    json_file = tmp_path / "coco" / "annotations" / "instances_train.json"
    assert len(CocoDetection(json_file, tmp_path / "coco" / "train", with_masks=True)) == len(original.splits[0].images)


def test_coco_yolo_boxes_only_round_trip_within_1e6(coco_case, tmp_path):
    data = coco_case["data"]
    data["annotations"][0]["bbox"] = [2.123456789, 2.7, 17.6, 9.2]  # not on the half-pixel grid
    ann_file = coco_case["write"](data)
    convert("coco", "yolo", ann_file, tmp_path / "yolo", image_dir=coco_case["img_dir"], with_masks=False)
    lines = (tmp_path / "yolo" / "labels" / "train" / "rgb.txt").read_text().splitlines()
    assert [len(line.split()) for line in lines] == [5, 5]  # the crowd region is left out
    original = read_dataset("coco", ann_file, image_dir=coco_case["img_dir"])
    back = read_dataset("yolo", tmp_path / "yolo")
    assert back.class_names == original.class_names
    by_name = {image.file_name: image for image in back.splits[0].images}  # YOLO lists files sorted
    for image_a in original.splits[0].images:
        image_b = by_name[image_a.file_name]
        kept = [i for i in image_a.instances if not i.iscrowd]
        assert [i.label for i in kept] == [i.label for i in image_b.instances]
        for a, b in zip(kept, image_b.instances):
            assert np.abs(np.subtract(a.box, b.box)).max() <= 2e-6 * max(image_a.width, image_a.height)


def test_multi_part_polygon_and_rle_masks_survive_yolo_seg(coco_case, tmp_path):
    convert("coco", "yolo", coco_case["ann_file"], tmp_path / "yolo", image_dir=coco_case["img_dir"])
    back = read_dataset("yolo", tmp_path / "yolo")
    original = read_dataset("coco", coco_case["ann_file"], image_dir=coco_case["img_dir"])
    rgb = [image.file_name for image in back.splits[0].images].index("rgb.jpg")  # YOLO lists files sorted
    first_a, first_b = _masks(original)[0], _masks(back)[rgb]
    np.testing.assert_array_equal(first_a[0], first_b[0])  # two polygon parts -> one outline -> same pixels
    np.testing.assert_array_equal(first_a[1], first_b[1])  # an RLE traced to a polygon along pixel edges


def test_voc_yolo_voc_keeps_the_xml_boxes(shapes_root, tmp_path):
    voc = shapes_root / "voc"
    convert("voc", "yolo", voc, tmp_path / "yolo", splits=["train", "val"])
    convert("yolo", "voc", tmp_path / "yolo", tmp_path / "voc")
    original, back = read_dataset("voc", voc, ["train", "val"]), read_dataset("voc", tmp_path / "voc", ["train", "val"])
    assert back.class_names == original.class_names  # sorted names both times (no classes.txt in the input)
    _assert_same_images(original, back)
    for split in ("train", "val"):
        ids = (voc / "ImageSets/Main" / f"{split}.txt").read_text().split()
        assert (tmp_path / "voc" / "ImageSets/Main" / f"{split}.txt").read_text().split() == ids
        for voc_id in ids:
            assert _xml_objects(tmp_path / "voc" / "Annotations" / f"{voc_id}.xml") == \
                _xml_objects(voc / "Annotations" / f"{voc_id}.xml")


def _xml_objects(path: Path) -> list[tuple]:
    root = ET.parse(path).getroot()
    return [(o.findtext("name"), *(int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")))
            for o in root.iter("object")]


def test_sub_folders_keep_their_names(coco_case, tmp_path):
    data = coco_case["data"]
    (coco_case["img_dir"] / "a").mkdir()
    (coco_case["img_dir"] / "rgb.jpg").rename(coco_case["img_dir"] / "a" / "rgb.jpg")
    data["images"][0]["file_name"] = "a/rgb.jpg"
    ann_file = coco_case["write"](data)
    convert("coco", "yolo", ann_file, tmp_path / "yolo", image_dir=coco_case["img_dir"])
    assert (tmp_path / "yolo" / "images/train/a/rgb.jpg").is_file()
    assert (tmp_path / "yolo" / "labels/train/a/rgb.txt").read_text().count("\n") == 2
    back = read_dataset("yolo", tmp_path / "yolo")
    assert sorted(i.file_name for i in back.splits[0].images) == sorted(i["file_name"] for i in data["images"])
    assert back.class_names == ["cat", "bird", "dog"]

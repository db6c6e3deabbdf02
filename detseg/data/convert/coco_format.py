"""COCO instances json <-> records. Layout of a COCO root (as tools/make_dataset.py writes it)::

    annotations/instances_{split}.json   file_name relative to {split}/
    {split}/...                          images

Reading goes through ``CocoDetection``, so a converted file passes the same checks as training
data (unknown category, bad box, missing image, unsafe file name: DatasetError naming the
annotation id). Category ids are kept; boxes are clipped to the image.
"""
from __future__ import annotations

import json
from pathlib import Path

from detseg.data.convert.files import place_image, write_text
from detseg.data.convert.masks import mask_area
from detseg.data.convert.records import DatasetRecords, ImageRecord, Instance, Split
from detseg.data.datasets.coco import CocoDetection
from detseg.data.errors import DatasetError


def coco_paths(root: Path, split: str) -> tuple[Path, Path]:
    return root / "annotations" / f"instances_{split}.json", root / split


def find_splits(root: Path) -> list[str]:
    return sorted(p.name[len("instances_"):-len(".json")] for p in (root / "annotations").glob("instances_*.json"))


def read_coco(root: Path, splits: list[str], ann_file: Path | None = None, image_dir: Path | None = None,
              on_bad_sample: str = "error") -> DatasetRecords:
    """``root`` + split names, or one ``ann_file`` with its ``image_dir`` (read as split ``splits[0]``)."""
    names = category_ids = None
    out = []
    for split in splits:
        json_path, img_dir = (ann_file, image_dir) if ann_file is not None else coco_paths(root, split)
        if not json_path.is_file():
            raise DatasetError(f"{json_path}: no such COCO annotation file (split {split!r})")
        dataset = CocoDetection(json_path, img_dir, on_bad_sample=on_bad_sample)
        if category_ids is not None and dataset.category_ids != category_ids:
            raise DatasetError(f"{json_path}: categories {dataset.category_ids} differ from the first split's "
                               f"{category_ids}; convert the splits separately")
        names, category_ids = dataset.class_names, dataset.category_ids
        out.append(Split(split, [_image(dataset, img_id) for img_id in dataset.image_ids]))
    return DatasetRecords(list(names), list(category_ids), out)


def _image(dataset: CocoDetection, img_id: int) -> ImageRecord:
    entry = dataset.coco.imgs[img_id]
    h, w = entry["height"], entry["width"]
    label_of = {cid: i for i, cid in enumerate(dataset.category_ids)}
    instances = []
    for ann in dataset.coco.imgToAnns[img_id]:
        x, y, bw, bh = (float(v) for v in ann["bbox"])
        box = (max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h)))
        seg = ann.get("segmentation")
        polygons = [list(map(float, p)) for p in seg] if isinstance(seg, list) and seg else None
        rle = seg if isinstance(seg, dict) else None
        instances.append(Instance(label_of[ann["category_id"]], box, polygons, rle, bool(ann.get("iscrowd", 0))))
    return ImageRecord(entry["file_name"], dataset.img_dir / entry["file_name"], h, w, instances)


def write_coco(records: DatasetRecords, output: Path, image_mode: str, with_masks: bool = True) -> None:
    for split in records.splits:
        json_path, img_dir = coco_paths(output, split.name)
        for image in split.images:
            place_image(image.source, img_dir / image.file_name, image_mode)
        write_text(json_path, json.dumps(_coco_dict(records, split, with_masks)))


def _coco_dict(records: DatasetRecords, split: Split, with_masks: bool) -> dict:
    images, annotations = [], []
    for image_id, image in enumerate(split.images, start=1):
        images.append({"id": image_id, "file_name": image.file_name, "height": image.height, "width": image.width})
        for inst in image.instances:
            annotations.append(_annotation(inst, records, image, image_id, len(annotations) + 1, with_masks))
    categories = [{"id": cid, "name": name} for cid, name in zip(records.category_ids, records.class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _annotation(inst: Instance, records: DatasetRecords, image: ImageRecord, image_id: int, ann_id: int,
                with_masks: bool) -> dict:
    x1, y1, x2, y2 = inst.box
    ann = {"id": ann_id, "image_id": image_id, "category_id": records.category_ids[inst.label],
           "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(inst.iscrowd)}
    if with_masks and inst.has_mask:
        ann["segmentation"] = inst.rle if inst.rle is not None else inst.polygons
        ann["area"] = mask_area(inst.polygons, inst.rle, (image.height, image.width))
    return ann

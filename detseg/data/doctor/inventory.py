"""What the doctor knows of one split: its image files, its label space and its object sizes.

Read as training reads it (the dataset classes under ``on_bad_sample: skip``, their own warnings
silenced: the per-file check reports those), plus the raw label fields the datasets drop (a COCO
annotation whose category is not defined, a VOC class outside ``data.classes``). Nothing is decoded
here; nothing is written.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detseg.data.autosize import SizeStats
from detseg.data.check import read_coco_json


@dataclass
class ImageEntry:
    name: str          # as shown in the report: the VOC id or the COCO file_name
    path: Path
    key: str | int     # what a split file lists: the VOC id or the COCO image id
    num_annotations: int = 0


@dataclass
class SplitInventory:
    split: str                         # "train" or "val"
    source: str
    images: list[ImageEntry]
    used: Counter = field(default_factory=Counter)  # label (VOC name, COCO id) -> annotations using it
    defined: list | None = None        # the label space the config or file defines; None: whatever is used
    names: dict = field(default_factory=dict)       # COCO id -> name (for the report)
    stats: SizeStats | None = None     # boxes training keeps (crowd and difficult out); None: no boxes


def split_inventory(data_cfg, split: str) -> SplitInventory:
    """The inventory of ``data.<split>`` for any data.format / data.task."""
    if data_cfg.format == "imagefolder":
        return _folder_inventory(data_cfg, split)
    if data_cfg.format == "voc" and data_cfg.task == "semantic":
        return _voc_semantic_inventory(data_cfg, split)
    if data_cfg.format == "voc":
        return _voc_inventory(data_cfg, split)
    if data_cfg.format == "coco":
        return _coco_inventory(data_cfg, split)
    raise ValueError(f"data.format must be one of coco, voc, imagefolder, got '{data_cfg.format}'")


def _quietly(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the per-file check has reported what the dataset skips
        return make()


def _voc_inventory(data_cfg, split: str) -> SplitInventory:
    from detseg.data.datasets.voc import VOCDetection

    split_cfg = getattr(data_cfg, split)
    # classes=None keeps every named object, so names outside data.classes are seen (and counted)
    dataset = _quietly(lambda: VOCDetection(split_cfg.root, split_cfg.split, None, on_bad_sample="skip"))
    images, used = [], Counter()
    for record in dataset._records:
        images.append(ImageEntry(record.voc_id, record.path, record.voc_id, len(record.objects)))
        used.update(o.name for o in record.objects)
    defined = list(data_cfg.classes) if data_cfg.classes is not None else None
    stats = _stats(dataset, None if defined is None else [dataset.class_names.index(c) for c in defined
                                                          if c in dataset.class_names])
    return SplitInventory(split, dataset.source, images, used, defined, stats=stats)


def _coco_inventory(data_cfg, split: str) -> SplitInventory:
    from detseg.data.datasets.coco import CocoDetection

    split_cfg = getattr(data_cfg, split)
    raw = read_coco_json(Path(split_cfg.ann_file))
    per_image = Counter(a.get("image_id") for a in raw.get("annotations", []))
    images = [ImageEntry(str(e.get("file_name")), Path(split_cfg.img_dir) / str(e.get("file_name")), e.get("id"),
                         per_image[e.get("id")]) for e in raw["images"] if isinstance(e, dict)]
    cats = {c.get("id"): str(c.get("name", c.get("id"))) for c in raw.get("categories", []) if isinstance(c, dict)}
    used = Counter(a.get("category_id") for a in raw.get("annotations", []) if isinstance(a, dict))
    defined = sorted(cats) if data_cfg.category_ids is None else [int(c) for c in data_cfg.category_ids]
    dataset = _quietly(lambda: CocoDetection(split_cfg.ann_file, split_cfg.img_dir, None, data_cfg.category_ids,
                                             on_bad_sample="skip"))
    return SplitInventory(split, split_cfg.ann_file, images, used, defined, cats, _stats(dataset, None))


def _stats(dataset, keep_labels: list[int] | None) -> SizeStats | None:
    """The boxes training keeps; ``keep_labels``: only these label indices (VOC with data.classes)."""
    if len(dataset) == 0:
        return None
    stats = SizeStats.of(dataset)
    if keep_labels is not None:
        keep = np.isin(stats.box_label, keep_labels)
        stats = SizeStats(stats.image_hw, stats.box_wh[keep], stats.box_image[keep], stats.box_label[keep])
    return stats


def _voc_semantic_inventory(data_cfg, split: str) -> SplitInventory:
    from detseg.data.datasets.voc_seg import VOCSegmentation

    split_cfg = getattr(data_cfg, split)
    dataset = _quietly(lambda: VOCSegmentation(split_cfg.root, split_cfg.split, data_cfg.classes,
                                               on_bad_sample="skip"))
    images = [ImageEntry(r.voc_id, r.image, r.voc_id) for r in dataset._records]
    return SplitInventory(split, dataset.source, images)


def _folder_inventory(data_cfg, split: str) -> SplitInventory:
    from detseg.data.datasets.image_folder import scan_image_folder

    root = Path(getattr(data_cfg, split).root)
    classes, items = scan_image_folder(root)
    images = [ImageEntry(str(Path(p).relative_to(root)), Path(p), str(Path(p).relative_to(root)), 1) for p, _ in items]
    return SplitInventory(split, str(root), images, Counter(classes[label] for _, label in items), list(classes))

"""Pascal VOC <-> records. Layout::

    JPEGImages/{id}.jpg   Annotations/{id}.xml   ImageSets/Main/{split}.txt   classes.txt (optional)

Coordinates: VOC ``xmin ymin xmax ymax`` are 1-based inclusive pixel indices. Reading follows
``VOCDetection``: ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` (0-based pixel edges).
Writing is its inverse on integers: ``xmin = round(x1) + 1, xmax = round(x2)``, so a box moves by
at most 0.5 px, and boxes already on whole pixels (COCO files from pixel masks) are kept exactly.
``difficult`` is the records' ``iscrowd``. VOC has no instance masks: they are dropped.

Label order: ``classes`` if given, else ``classes.txt`` in the root (one name per line, written by
this converter so a round trip keeps the order), else the sorted names (as ``VOCDetection``).
"""
from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from detseg.data.convert.files import place_image, write_text
from detseg.data.convert.records import DatasetRecords, ImageRecord, Instance, Split
from detseg.data.datasets.voc import VOCDetection

CLASSES_FILE = "classes.txt"


def find_splits(root: Path) -> list[str]:
    found = [s for s in ("train", "val", "trainval", "test") if (root / "ImageSets" / "Main" / f"{s}.txt").is_file()]
    if "train" in found and "val" in found and "trainval" in found:
        found.remove("trainval")  # their union: it would write every image twice
    return found


def read_voc(root: Path, splits: list[str], classes: list[str] | None = None,
             on_bad_sample: str = "error") -> DatasetRecords:
    if classes is None and (root / CLASSES_FILE).is_file():
        classes = [line.strip() for line in (root / CLASSES_FILE).read_text().splitlines() if line.strip()]
    datasets = [(split, VOCDetection(root, split, classes, on_bad_sample=on_bad_sample)) for split in splits]
    if classes is None:  # the union over the splits, so every split shares one label space
        classes = sorted({name for _, d in datasets for name in d.class_names})
        datasets = [(split, VOCDetection(root, split, classes, on_bad_sample=on_bad_sample)) for split in splits]
    out = [Split(split, [_image(d, i) for i in range(len(d))]) for split, d in datasets]
    return DatasetRecords(list(classes), list(range(1, len(classes) + 1)), out)


def _image(dataset: VOCDetection, idx: int) -> ImageRecord:
    path, (h, w) = dataset.get_image_info(idx)
    ann = dataset.get_annotation(idx)
    instances = [Instance(int(label), tuple(float(v) for v in box), iscrowd=bool(difficult))
                 for box, label, difficult in zip(ann["boxes"].tolist(), ann["labels"], ann["difficult"])]
    return ImageRecord(Path(path).name, Path(path), h, w, instances)


def write_voc(records: DatasetRecords, output: Path, image_mode: str) -> None:
    taken: dict[str, Path] = {}  # VOC id -> source image: all splits share JPEGImages/
    for split in records.splits:
        ids = []
        for image in split.images:
            voc_id = _unique_id(image, split.name, taken)
            file_name = voc_id + PurePosixPath(image.file_name).suffix.lower()
            place_image(image.source, output / "JPEGImages" / file_name, image_mode)
            write_text(output / "Annotations" / f"{voc_id}.xml", voc_xml(file_name, image, records.class_names))
            ids.append(voc_id)
        write_text(output / "ImageSets" / "Main" / f"{split.name}.txt", "".join(f"{i}\n" for i in ids))
    write_text(output / CLASSES_FILE, "".join(f"{name}\n" for name in records.class_names))


def _unique_id(image: ImageRecord, split: str, taken: dict[str, Path]) -> str:
    """The file's stem (sub-folders joined by '_'); prefixed by the split, then numbered, on a clash."""
    stem = str(PurePosixPath(image.file_name).with_suffix("")).replace("/", "_")
    numbered = (f"{split}_{stem}_{k}" for k in itertools.count(2))
    for candidate in itertools.chain([stem, f"{split}_{stem}"], numbered):
        if taken.get(candidate, image.source) == image.source:
            taken[candidate] = image.source
            return candidate


def voc_box(box: tuple[float, float, float, float], hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """0-based pixel edges -> VOC 1-based inclusive integers, at least one pixel, inside the image."""
    x1, y1 = min(max(round(box[0]), 0), hw[1] - 1), min(max(round(box[1]), 0), hw[0] - 1)
    x2, y2 = max(min(round(box[2]), hw[1]), x1 + 1), max(min(round(box[3]), hw[0]), y1 + 1)
    return x1 + 1, y1 + 1, x2, y2


def voc_xml(file_name: str, image: ImageRecord, class_names: list[str]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = file_name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", image.width), ("height", image.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for inst in image.instances:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = class_names[inst.label]
        for tag, value in (("pose", "Unspecified"), ("truncated", "0"), ("difficult", str(int(inst.iscrowd)))):
            ET.SubElement(obj, tag).text = value
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), voc_box(inst.box, (image.height, image.width))):
            ET.SubElement(bndbox, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"

"""Pascal VOC layout (``JPEGImages/``, ``Annotations/*.xml``, ``ImageSets/Main/{split}.txt``).

Rules:
- Boxes: VOC ``xmin ymin xmax ymax`` are 1-based inclusive pixel indices; they become
  ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` (pixel edges, 0-based). What is bad,
  clipped or a duplicate follows detseg.data.box_rules (shared with COCO and the checker); a box
  drawn with ``xmin == xmax`` (or ``ymin == ymax``) is a zero-size click, not a one-pixel object.
- Image size: the image file's (displayed) size is used; an xml ``<size>`` that disagrees is
  counted as ``size_from_image`` (repaired), since annotation tools often write a stale one.
- Messages name the xml file (``Annotations/<id>.xml``).
- Classes: ``classes`` gives the label order; by default the sorted names found in the
  split's xmls. An object of another class is a bad annotation.
- ``difficult`` objects are left out of training samples unless ``keep_difficult``, and are
  always in ``get_annotation`` and ``to_coco`` (there as ``iscrowd=1``, which COCO evaluation
  ignores, like VOC evaluation does).
- Image ids are the dataset indices 0..N-1, in ``to_coco()`` as well.
- ``on_bad_sample`` works as for CocoDetection: "error" raises DatasetError, "skip" drops
  the bad object (or image), counts it in ``self.skipped`` and warns once.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from detseg.data.box_rules import REPAIRED_KINDS, DuplicateFinder, clip_xyxy, crosses_border, xyxy_problem
from detseg.data.datasets.base import DetectionDataset, Target, TransformFn
from detseg.data.datasets.coco import coco_from_dict
from detseg.data.errors import DatasetError, ProblemLog
from detseg.data.safety import displayed_size, unsafe_file_name

VOC_REPAIRED_KINDS = ("size_from_image",)


@dataclass
class _Object:
    name: str
    box: list[float]   # xyxy, 0-based pixel edges
    difficult: bool


@dataclass
class _Record:
    voc_id: str
    path: Path
    hw: tuple[int, int]
    objects: list[_Object]


def _image_size(path: Path) -> tuple[int, int]:
    """(h, w) from the file header, as it will be after EXIF orientation."""
    with Image.open(path) as img:
        return displayed_size(img)


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")  # reported as an invalid box, not as an unreadable file


def _parse_object(node: ET.Element) -> _Object:
    xmin, ymin, xmax, ymax = (_number(node.findtext(f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax"))
    difficult = _number(node.findtext("difficult")) == 1
    return _Object((node.findtext("name") or "").strip(), [xmin - 1, ymin - 1, xmax, ymax], difficult)


def _box_problem(box: list[float], hw: tuple[int, int]) -> tuple[str, str] | None:
    """box_rules on the pixel edges; the message quotes the xml's own numbers."""
    problem = xyxy_problem(box, hw)
    x1, y1, x2, y2 = box
    return None if problem is None else (problem[0], f"box (xmin, ymin, xmax, ymax) = "
                                                     f"{(x1 + 1, y1 + 1, x2, y2)} {problem[1]}")


class VOCDetection(DetectionDataset):
    def __init__(self, root: str | os.PathLike, split: str, classes: list[str] | None = None,
                 transforms: TransformFn | None = None, keep_difficult: bool = False,
                 on_bad_sample: str = "error"):
        self.root, self.split, self.keep_difficult = Path(root), split, keep_difficult
        list_file = self.root / "ImageSets" / "Main" / f"{split}.txt"
        super().__init__(str(list_file), transforms, on_bad_sample)
        self.problems = ProblemLog(str(list_file), REPAIRED_KINDS + VOC_REPAIRED_KINDS)
        records = [r for r in (self._read_record(i, self.problems) for i in self._read_ids(list_file)) if r]
        self.class_names = list(classes) if classes is not None else sorted(
            {o.name for r in records for o in r.objects if o.name})
        self.category_ids = list(range(1, len(self.class_names) + 1))
        self._label_of = {name: i for i, name in enumerate(self.class_names)}
        for record in records:
            duplicates = DuplicateFinder()
            record.objects = [o for o in record.objects if self._object_ok(record, o, self.problems, duplicates)]
        self.skipped = self.problems.finish(on_bad_sample)
        self._records = records
        self.image_ids = list(range(len(records)))

    # ------------------------------------------------------------------ parsing
    @staticmethod
    def _read_ids(list_file: Path) -> list[str]:
        try:
            lines = list_file.read_text().split("\n")
        except OSError as exc:
            raise DatasetError(f"{list_file}: cannot read the split file ({exc})") from exc
        return [line.split()[0] for line in lines if line.strip()]

    def _read_record(self, voc_id: str, problems: ProblemLog) -> _Record | None:
        xml_path = self.root / "Annotations" / f"{voc_id}.xml"
        try:
            tree = ET.parse(xml_path).getroot()
            objects = [_parse_object(node) for node in tree.iter("object")]
        except FileNotFoundError:
            problems.add("missing_annotation_file", f"{voc_id}.xml: {xml_path} does not exist")
            return None
        except (ET.ParseError, OSError) as exc:
            problems.add("bad_annotation_file", f"{voc_id}.xml: {xml_path}: {exc}")
            return None
        path = self._image_path(voc_id, tree.findtext("filename"))
        if path is None:
            problems.add("missing_file", f"{voc_id}.xml: no image {voc_id}.jpg in {self.root / 'JPEGImages'}")
            return None
        try:
            hw = _image_size(path)
        except (OSError, SyntaxError, ValueError) as exc:
            problems.add("unreadable_image", f"{voc_id}.xml: {path}: {exc}")
            return None
        stated = self._stated_size(tree)
        if stated is not None and stated != hw:
            problems.add("size_from_image", f"{voc_id}.xml: <size> says (h, w) = {stated}, the image {path.name} "
                         f"is {hw}; the image's size is used")
        return _Record(voc_id, path, hw, objects)

    def _image_path(self, voc_id: str, xml_name: str | None) -> Path | None:
        """``JPEGImages/{id}.jpg`` as in VOC; else the xml's ``filename`` (other extensions)."""
        for name in (f"{voc_id}.jpg", (xml_name or "").strip()):
            safe = name and not unsafe_file_name(self.root / "JPEGImages", name)  # the xml is untrusted too
            if safe and (self.root / "JPEGImages" / name).is_file():
                return self.root / "JPEGImages" / name
        return None

    @staticmethod
    def _stated_size(tree: ET.Element) -> tuple[int, int] | None:
        """The xml's ``<size>`` as (h, w), or None when it is missing or not positive (some tools write 0)."""
        try:
            h, w = int(tree.findtext("size/height")), int(tree.findtext("size/width"))
        except (TypeError, ValueError):
            return None
        return (h, w) if h > 0 and w > 0 else None

    def _object_ok(self, record: _Record, obj: _Object, problems: ProblemLog, duplicates: DuplicateFinder) -> bool:
        where = f"{record.voc_id}.xml ({obj.name})"
        if obj.name not in self._label_of:
            problems.add("unknown_category", f"{record.voc_id}.xml: class {obj.name!r} is not in {self.class_names}")
            return False
        problem = _box_problem(obj.box, record.hw)
        if problem is not None:
            problems.add(problem[0], f"{where}: {problem[1]}")
            return False
        if duplicates.seen(obj.name, obj.box):
            problems.add("duplicate_box", f"{where}: box {obj.box} repeats an earlier box of the image; dropped")
            return False
        if crosses_border(obj.box, record.hw):
            problems.add("box_partly_outside", f"{where}: box {obj.box} extends past the "
                         f"{record.hw[1]}x{record.hw[0]} image (clipped)")
        obj.box = clip_xyxy(obj.box, record.hw)
        return True

    # ------------------------------------------------------------------ samples
    def get_image_info(self, idx: int) -> tuple[str, tuple[int, int]]:
        record = self._records[idx]
        return str(record.path), record.hw

    def get_annotation(self, idx: int) -> dict[str, np.ndarray]:
        """All objects of an image, difficult ones included, in original pixels (for evaluation)."""
        objects = self._records[idx].objects
        return {
            "boxes": np.array([o.box for o in objects], np.float32).reshape(-1, 4),
            "labels": np.array([self._label_of[o.name] for o in objects], np.int64),
            "difficult": np.array([o.difficult for o in objects], bool),
        }

    def _load_target(self, idx: int, hw: tuple[int, int]) -> Target:
        ann = self.get_annotation(idx)
        keep = np.ones(len(ann["labels"]), bool) if self.keep_difficult else ~ann["difficult"]
        return ann["boxes"][keep], ann["labels"][keep], np.zeros(int(keep.sum()), bool), None

    # ------------------------------------------------------------------ COCO view
    def to_coco(self) -> dict:
        """The split as a COCO instances dict (image ids = dataset indices, category ids 1..K)."""
        images, annotations = [], []
        for idx, record in enumerate(self._records):
            images.append({"id": idx, "file_name": record.path.name, "height": record.hw[0], "width": record.hw[1]})
            for obj in record.objects:
                x1, y1, x2, y2 = obj.box
                annotations.append({
                    "id": len(annotations) + 1, "image_id": idx, "category_id": self._label_of[obj.name] + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(obj.difficult),
                })
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    @cached_property
    def coco(self):
        """pycocotools COCO of ``to_coco()``, for COCO-style evaluation; built on first use."""
        return coco_from_dict(self.to_coco(), str(self.root))

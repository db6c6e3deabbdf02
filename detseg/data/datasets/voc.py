"""Pascal VOC layout (``JPEGImages/``, ``Annotations/*.xml``, ``ImageSets/Main/{split}.txt``).

Rules:
- Boxes: VOC ``xmin ymin xmax ymax`` are 1-based inclusive pixel indices; they become
  ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` (pixel edges, 0-based), then are
  clipped to the image. ``xmax < xmin`` (or ``ymax < ymin``), non-numbers, and boxes
  entirely outside the image are bad annotations.
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

from detseg.data.datasets.base import DetectionDataset, Target, TransformFn, clip_boxes_
from detseg.data.datasets.coco import coco_from_dict
from detseg.data.errors import DatasetError, ProblemLog
from detseg.data.safety import unsafe_file_name

EXIF_ORIENTATION = 0x0112


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
        w, h = img.size
        rotated = img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    return (w, h) if rotated else (h, w)


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
    x1, y1, x2, y2 = box
    if not np.isfinite(box).all() or x2 <= x1 or y2 <= y1:
        return "invalid_box", f"box (xmin, ymin, xmax, ymax) = {(x1 + 1, y1 + 1, x2, y2)} is empty or not numeric"
    if x1 >= hw[1] or y1 >= hw[0] or x2 <= 0 or y2 <= 0:
        return "box_outside_image", f"box {(x1 + 1, y1 + 1, x2, y2)} lies entirely outside the {hw[1]}x{hw[0]} image"
    return None


class VOCDetection(DetectionDataset):
    def __init__(self, root: str | os.PathLike, split: str, classes: list[str] | None = None,
                 transforms: TransformFn | None = None, keep_difficult: bool = False,
                 on_bad_sample: str = "error"):
        self.root, self.split, self.keep_difficult = Path(root), split, keep_difficult
        list_file = self.root / "ImageSets" / "Main" / f"{split}.txt"
        super().__init__(str(list_file), transforms, on_bad_sample)
        problems = ProblemLog(str(list_file))
        records = [r for r in (self._read_record(i, problems) for i in self._read_ids(list_file)) if r]
        self.class_names = list(classes) if classes is not None else sorted(
            {o.name for r in records for o in r.objects if o.name})
        self.category_ids = list(range(1, len(self.class_names) + 1))
        self._label_of = {name: i for i, name in enumerate(self.class_names)}
        for record in records:
            record.objects = [o for o in record.objects if self._object_ok(record, o, problems)]
        self.skipped = problems.finish(on_bad_sample)
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
            problems.add("missing_annotation_file", f"{voc_id}: {xml_path} does not exist")
            return None
        except (ET.ParseError, OSError) as exc:
            problems.add("bad_annotation_file", f"{voc_id}: {xml_path}: {exc}")
            return None
        path = self._image_path(voc_id, tree.findtext("filename"))
        if path is None:
            problems.add("missing_file", f"{voc_id}: no image {voc_id}.jpg in {self.root / 'JPEGImages'}")
            return None
        try:
            hw = self._size(tree, path)
        except (OSError, SyntaxError, ValueError) as exc:  # no size in the xml and an unreadable header
            problems.add("unreadable_image", f"{voc_id}: {path}: {exc}")
            return None
        return _Record(voc_id, path, hw, objects)

    def _image_path(self, voc_id: str, xml_name: str | None) -> Path | None:
        """``JPEGImages/{id}.jpg`` as in VOC; else the xml's ``filename`` (other extensions)."""
        for name in (f"{voc_id}.jpg", (xml_name or "").strip()):
            safe = name and not unsafe_file_name(self.root / "JPEGImages", name)  # the xml is untrusted too
            if safe and (self.root / "JPEGImages" / name).is_file():
                return self.root / "JPEGImages" / name
        return None

    @staticmethod
    def _size(tree: ET.Element, path: Path) -> tuple[int, int]:
        try:
            h, w = int(tree.findtext("size/height")), int(tree.findtext("size/width"))
        except (TypeError, ValueError):
            h = w = 0
        return (h, w) if h > 0 and w > 0 else _image_size(path)  # some xmls lack a size

    def _object_ok(self, record: _Record, obj: _Object, problems: ProblemLog) -> bool:
        if obj.name not in self._label_of:
            problems.add("unknown_category", f"{record.voc_id}: class {obj.name!r} is not in {self.class_names}")
            return False
        problem = _box_problem(obj.box, record.hw)
        if problem is not None:
            problems.add(problem[0], f"{record.voc_id} ({obj.name}): {problem[1]}")
            return False
        obj.box = clip_boxes_(np.array([obj.box], np.float32), record.hw)[0].tolist()
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

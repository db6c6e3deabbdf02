"""COCO instances files (any valid one) as detection / instance segmentation samples.

Rules:
- Labels: label ``i`` is category id ``category_ids[i]``. By default the sorted ids of the
  file's ``categories``; pass ``category_ids`` (e.g. ``range(1, 91)``) to fix another label
  space. Every annotation's category must be in it.
- Boxes: COCO ``[x, y, w, h]`` becomes ``[x, y, x + w, y + h]``; a box partly outside the
  image is clipped to it. A box with NaN or non-positive width/height, or entirely outside
  the image, is a bad annotation.
- Crowd regions are kept and flagged in ``iscrowd``; images without annotations are kept.
- Masks (``with_masks=True``) are decoded from polygons (one or several parts) or from
  compressed / uncompressed RLE by pycocotools.
- Semantic maps (``with_sem_seg=True``, the sample's ``sem_seg``) are rendered from the same
  masks: 0 = background, label + 1 where an object is; crowd regions are 255 (ignore) except where
  a non-crowd object lies on them; overlapping objects: the smaller one is painted on top.
- Bad input is found at construction without decoding images (unknown category, invalid
  box, annotation without image entry, image entry without file, a ``file_name`` that is
  absolute / contains ``..`` / is a symlink leaving ``img_dir``, width*height above
  ``detseg.data.safety.MAX_IMAGE_PIXELS``). ``width``/``height`` are the displayed size
  (after EXIF orientation), see detseg.data.safety. ``on_bad_sample="error"``
  raises DatasetError listing the first problems; ``"skip"`` drops the bad annotation (or the
  bad image with its annotations), counts them in ``self.skipped`` and warns once. ``self.coco``
  then holds the cleaned annotations, so evaluation sees the same ground truth as training.
  Files are only read, never written.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from detseg.data.box_rules import REPAIRED_KINDS, DuplicateFinder, crosses_border, xyxy_problem
from detseg.data.datasets.base import DetectionDataset, Target, TransformFn, clip_boxes_
from detseg.data.errors import DatasetError, ProblemLog
from detseg.data.safety import pixel_limit_message, too_many_pixels, unsafe_file_name


def coco_from_dict(data: dict, source: str = "<dict>") -> COCO:
    """A pycocotools COCO object built from an in-memory dict, without its console chatter."""
    coco = COCO()
    coco.dataset = data
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{source}: not a COCO instances file (missing or malformed field {exc})") from exc
    return coco


def load_coco_json(ann_file: str) -> COCO:
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{ann_file}: cannot read COCO json ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or "categories" not in data:
        raise DatasetError(f"{ann_file}: not a COCO instances file (needs 'images' and 'categories')")
    return coco_from_dict(data, ann_file)


def box_problem(bbox, hw: tuple[int, int]) -> tuple[str, str] | None:
    """(kind, description) if a COCO [x, y, w, h] box is unusable on an image of size hw (box_rules)."""
    xyxy = coco_to_xyxy(bbox)
    if xyxy is None:
        return "invalid_box", f"bbox {bbox!r} is not four numbers [x, y, w, h]"
    problem = xyxy_problem(xyxy, hw)
    return None if problem is None else (problem[0], f"bbox {bbox!r} {problem[1]}")


def coco_to_xyxy(bbox) -> list[float] | None:
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return None
    return [x, y, x + w, y + h]


class CocoDetection(DetectionDataset):
    def __init__(self, ann_file: str | os.PathLike, img_dir: str | os.PathLike,
                 transforms: TransformFn | None = None, category_ids: list[int] | None = None,
                 with_masks: bool = False, on_bad_sample: str = "error", with_sem_seg: bool = False):
        super().__init__(str(ann_file), transforms, on_bad_sample)
        self.ann_file, self.img_dir, self.with_masks = str(ann_file), Path(img_dir), with_masks
        self.with_sem_seg = with_sem_seg
        coco = load_coco_json(self.ann_file)
        self.category_ids = sorted(coco.cats) if category_ids is None else [int(c) for c in category_ids]
        self.class_names = [coco.cats[c]["name"] if c in coco.cats else f"category_{c}" for c in self.category_ids]
        self._label_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self.problems = problems = ProblemLog(self.ann_file, REPAIRED_KINDS)
        bad_images = self._check_images(coco, problems)
        bad_anns = self._check_annotations(coco, bad_images, problems)
        self.skipped = problems.finish(on_bad_sample)
        self.coco = self._without(coco, bad_images, bad_anns) if (bad_images or bad_anns) else coco
        self.image_ids = sorted(self.coco.imgs)

    # ------------------------------------------------------------------ validation
    def _check_images(self, coco: COCO, problems: ProblemLog) -> set[int]:
        bad = set()
        for img_id, entry in coco.imgs.items():
            name, h, w = entry.get("file_name"), entry.get("height"), entry.get("width")
            if not isinstance(name, str) or not all(isinstance(v, int) and v > 0 for v in (h, w)):
                problems.add("invalid_image_entry", f"image id {img_id}: needs file_name, positive integer "
                             f"height and width, got {name!r}, {h!r}, {w!r}")
                bad.add(img_id)
            elif unsafe_file_name(self.img_dir, name):
                problems.add("unsafe_path", f"image id {img_id}: {unsafe_file_name(self.img_dir, name)}")
                bad.add(img_id)
            elif too_many_pixels(h, w):
                problems.add("image_too_large", f"image id {img_id} ({name}): {pixel_limit_message(h, w)}")
                bad.add(img_id)
            elif not (self.img_dir / name).is_file():
                problems.add("missing_file", f"image id {img_id}: file {self.img_dir / name} does not exist")
                bad.add(img_id)
        return bad

    def _check_annotations(self, coco: COCO, bad_images: set[int], problems: ProblemLog) -> set:
        """Ids of the annotations to drop (bad, or exact duplicates); clipped boxes are counted."""
        bad, duplicates = set(), defaultdict(DuplicateFinder)
        for ann in coco.dataset.get("annotations", []):
            entry = coco.imgs.get(ann["image_id"])
            if entry is not None and ann["image_id"] in bad_images:
                bad.add(ann["id"])  # goes with its image, already reported
                continue
            where = f"annotation id {ann['id']} (image {entry['file_name'] if entry else ann['image_id']})"
            problem = self._annotation_problem(coco, ann, entry) or repair_note(ann, entry, duplicates)
            if problem is not None:
                problems.add(problem[0], f"{where}: {problem[1]}")
            if problem is not None and problem[0] != "box_partly_outside":  # clipped boxes stay
                bad.add(ann["id"])
        return bad

    def _annotation_problem(self, coco: COCO, ann: dict, entry: dict | None) -> tuple[str, str] | None:
        if entry is None:
            return "missing_image_entry", f"image_id {ann['image_id']} has no entry in 'images'"
        cat = ann.get("category_id")
        if cat not in coco.cats:
            return "unknown_category", f"category_id {cat!r} is not in 'categories'"
        if cat not in self._label_of:
            return "unknown_category", f"category_id {cat!r} is not in the label space {self.category_ids}"
        if (self.with_masks or self.with_sem_seg) and not ann.get("segmentation"):
            return "missing_segmentation", "masks or semantic maps are wanted but the annotation has no segmentation"
        return box_problem(ann.get("bbox"), (entry["height"], entry["width"]))

    def _without(self, coco: COCO, bad_images: set[int], bad_anns: set) -> COCO:
        """A new COCO index without the bad items; the loaded dict is copied shallowly, never written."""
        data = dict(coco.dataset)
        data["images"] = [e for e in coco.dataset["images"] if e["id"] not in bad_images]
        data["annotations"] = [a for a in coco.dataset.get("annotations", []) if a["id"] not in bad_anns]
        return coco_from_dict(data, self.ann_file)

    # ------------------------------------------------------------------ samples
    def get_image_info(self, idx: int) -> tuple[str, tuple[int, int]]:
        entry = self.coco.imgs[self.image_ids[idx]]
        return str(self.img_dir / entry["file_name"]), (entry["height"], entry["width"])

    def _load_target(self, idx: int, hw: tuple[int, int]) -> Target:
        anns = self.coco.imgToAnns[self.image_ids[idx]]
        boxes = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = np.array([self._label_of[a["category_id"]] for a in anns], np.int64)
        iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
        masks = None
        if self.with_masks:
            masks = np.zeros((len(anns), *hw), np.uint8)
            for i, ann in enumerate(anns):
                masks[i] = self.coco.annToMask(ann)
        return clip_boxes_(boxes, hw), labels, iscrowd, masks

    def _load_sem_seg(self, idx: int, hw: tuple[int, int]) -> np.ndarray:
        anns = self.coco.imgToAnns[self.image_ids[idx]]
        return render_semantic(anns, self.coco.annToMask, self._label_of, hw)


def repair_note(ann: dict, entry: dict, duplicates: dict) -> tuple[str, str] | None:
    """For a usable box: a duplicate (dropped) or one crossing the border (clipped), per box_rules.
    ``duplicates``: image id -> DuplicateFinder (a defaultdict)."""
    xyxy, hw = coco_to_xyxy(ann["bbox"]), (entry["height"], entry["width"])
    crowd = bool(ann.get("iscrowd", 0))
    if duplicates[ann["image_id"]].seen((ann["category_id"], crowd), xyxy):
        return "duplicate_box", f"bbox {ann['bbox']} repeats an earlier box of the image; dropped"
    if crosses_border(xyxy, hw):
        return "box_partly_outside", f"bbox {ann['bbox']} extends past the {hw[1]}x{hw[0]} image (clipped)"
    return None


def render_semantic(anns: list[dict], to_mask, label_of: dict[int, int], hw: tuple[int, int]) -> np.ndarray:
    """uint8 [h, w]: 0 background, label + 1 on objects, 255 on crowd regions no object covers."""
    out = np.zeros(hw, np.uint8)
    crowd = [a for a in anns if a.get("iscrowd", 0)]
    objects = sorted((a for a in anns if not a.get("iscrowd", 0)), key=lambda a: -float(a.get("area", 0)))
    for ann in crowd:
        out[to_mask(ann).astype(bool)] = 255
    for ann in objects:  # largest first, so a small object on a large one stays visible
        out[to_mask(ann).astype(bool)] = label_of[ann["category_id"]] + 1
    return out

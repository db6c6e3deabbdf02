"""Dataset validation without training: ``tools/check_dataset.py`` and the check at the start of training.

Only file headers are read (PIL opens lazily) plus the last bytes of JPEG/PNG files to spot
truncation, so checking 100k images takes seconds, not a decode pass; ``decode=True`` also
decodes every image. Files are opened read-only; nothing is ever written.

Errors make the data unusable under ``on_bad_sample: error``; warnings (EXIF orientation,
boxes partly outside the image, images without or with only crowd annotations) are reported
but do not stop training.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from detseg.data.box_rules import REPAIRED_KINDS, DuplicateFinder
from detseg.data.datasets.coco import box_problem, repair_note
from detseg.data.datasets.voc import VOC_REPAIRED_KINDS
from detseg.data.errors import DatasetError
from detseg.data.safety import (displayed_size, orientation_note, pixel_limit_message, too_many_pixels,
                                unsafe_file_name)

WARNING_KINDS = {"exif_orientation", "exif_orientation_invalid", "no_annotations", "only_crowd",
                 *REPAIRED_KINDS, *VOC_REPAIRED_KINDS}
LISTED_PER_KIND = 5
# Files must end with these markers; a copy or download cut short does not.
END_MARKERS = {".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9", ".png": b"IEND\xaeB`\x82"}


@dataclass
class Report:
    source: str
    num_images: int = 0
    num_annotations: int = 0
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    histogram: Counter = field(default_factory=Counter)

    def add(self, kind: str, message: str) -> None:
        self.problems[kind].append(message)

    @property
    def errors(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.problems.items() if k not in WARNING_KINDS}

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        """JSON-ready: every message by kind, errors and warnings apart, and the class histogram."""
        warnings = {k: list(v) for k, v in sorted(self.problems.items()) if k in WARNING_KINDS}
        return {"source": self.source, "num_images": self.num_images, "num_annotations": self.num_annotations,
                "errors": {k: list(v) for k, v in sorted(self.errors.items())}, "warnings": warnings,
                "annotations_per_class": dict(sorted(self.histogram.items()))}

    def text(self) -> str:
        n_err = sum(map(len, self.errors.values()))
        n_warn = sum(len(v) for k, v in self.problems.items() if k in WARNING_KINDS)
        lines = [f"{self.source}: {self.num_images} images, {self.num_annotations} annotations, "
                 f"{n_err} error(s), {n_warn} warning(s)"]
        for kind, messages in sorted(self.problems.items(), key=lambda kv: (kv[0] in WARNING_KINDS, kv[0])):
            level = "warning" if kind in WARNING_KINDS else "ERROR"
            lines.append(f"  {level} {kind}: {len(messages)}")
            lines += [f"    - {m}" for m in messages[:LISTED_PER_KIND]]
            if len(messages) > LISTED_PER_KIND:
                lines.append(f"    ... and {len(messages) - LISTED_PER_KIND} more")
        lines.append("  annotations per class (crowd excluded):")
        lines += [f"    {name:<24} {count}" for name, count in sorted(self.histogram.items())]
        return "\n".join(lines)


# ---------------------------------------------------------------------- images
def check_image_file(path: Path, hw: tuple[int, int] | None, report: Report, where: str,
                     decode: bool = False) -> None:
    """Header-level checks of one image file; ``hw`` is the annotated (displayed) size."""
    if not path.is_file():
        return report.add("missing_file", f"{where}: {path} does not exist")
    if path.stat().st_size == 0:
        return report.add("empty_file", f"{where}: {path} is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            _check_header(img, path, hw, report, where)
            if decode:
                img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return report.add("unreadable_image", f"{where}: {path}: {exc}")
    if _truncated(path):
        report.add("truncated_image", f"{where}: {path} ends before its end-of-image marker and does not decode (cut short?)")


def _check_header(img: Image.Image, path: Path, hw, report: Report, where: str) -> None:
    w, h = img.size
    if too_many_pixels(h, w):
        report.add("image_too_large", f"{where}: {path}: {pixel_limit_message(h, w)}")
    note = orientation_note(img)
    if note is not None:
        report.add(note[0], f"{where}: {path} {note[1]}")
    shown = displayed_size(img)
    if hw is not None and tuple(hw) != shown:
        report.add("size_mismatch", f"{where}: annotated (h, w) = {tuple(hw)}, the displayed image is {shown}")


def _truncated(path: Path) -> bool:
    """A file without its end marker near the end is decoded to decide: cameras and editors often
    write padding or metadata after a JPEG's end-of-image marker, and such files are whole."""
    marker = END_MARKERS.get(path.suffix.lower())
    if marker is None:
        return False
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 64))
        if marker in f.read():
            return False
    try:
        with Image.open(path) as img:
            img.load()  # raises "image file is truncated" when the data really stops short
    except (OSError, SyntaxError, ValueError):
        return True
    return False


# ---------------------------------------------------------------------- COCO
def check_coco(ann_file: str | Path, img_dir: str | Path, category_ids: list[int] | None = None,
               decode: bool = False) -> Report:
    report = Report(str(ann_file))
    data = read_coco_json(Path(ann_file))
    cats = {c.get("id"): c.get("name", str(c.get("id"))) for c in data.get("categories", []) if isinstance(c, dict)}
    known = set(cats) if category_ids is None else set(cats) & {int(c) for c in category_ids}
    images = _check_coco_images(data["images"], Path(img_dir), report, decode)
    per_image = _check_coco_annotations(data.get("annotations", []), images, cats, known, report)
    for img_id, entry in images.items():
        flags = per_image.get(img_id, [])
        if not flags:
            report.add("no_annotations", f"image id {img_id} ({entry.get('file_name')}) has no annotations")
        elif all(flags):
            report.add("only_crowd", f"image id {img_id} ({entry.get('file_name')}) has only crowd annotations")
    return report


def read_coco_json(path: Path) -> dict:
    """A COCO instances file, or a one-line DatasetError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read COCO json ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{path}: not a COCO instances file (needs an 'images' list)")
    return data


def _check_coco_images(entries: list, img_dir: Path, report: Report, decode: bool) -> dict:
    """image id -> entry for the entries whose fields are usable (files may still be bad)."""
    images: dict = {}
    for entry in entries:
        report.num_images += 1
        img_id, name = entry.get("id"), entry.get("file_name")
        h, w = entry.get("height"), entry.get("width")
        where = f"image id {img_id} ({name})"
        if img_id in images:
            report.add("duplicate_image_id", f"image id {img_id} appears more than once")
        elif not isinstance(name, str) or not all(isinstance(v, int) and v > 0 for v in (h, w)):
            report.add("invalid_image_entry", f"{where}: needs file_name and positive integer height, width")
        elif unsafe_file_name(img_dir, name):
            report.add("unsafe_path", f"{where}: {unsafe_file_name(img_dir, name)}")
        elif too_many_pixels(h, w):
            report.add("image_too_large", f"{where}: annotated {pixel_limit_message(h, w)}")
        else:
            images[img_id] = entry
            check_image_file(img_dir / name, (h, w), report, where, decode)
    return images


def _check_coco_annotations(anns: list, images: dict, cats: dict, known: set, report: Report) -> dict:
    """image id -> [iscrowd, ...] of its annotations; fills the report and histogram."""
    per_image, seen, duplicates = defaultdict(list), set(), defaultdict(DuplicateFinder)
    for ann in anns:
        report.num_annotations += 1
        ann_id, entry = ann.get("id"), images.get(ann.get("image_id"))
        name = entry.get("file_name") if entry is not None else ann.get("image_id")
        where = f"annotation id {ann_id} (image {name})"
        if ann_id in seen:
            report.add("duplicate_annotation_id", f"{where}: id used more than once")
        seen.add(ann_id)
        if entry is None:
            report.add("missing_image_entry", f"{where}: image id has no usable entry in 'images'")
            continue
        if ann.get("category_id") not in known:
            report.add("unknown_category", f"{where}: category_id {ann.get('category_id')!r} is not a known category")
            continue
        crowd = bool(ann.get("iscrowd", 0))
        per_image[ann["image_id"]].append(crowd)
        _check_box(ann, entry, duplicates, report, where)
        _check_segmentation(ann.get("segmentation"), (entry["height"], entry["width"]), report, where)
        if not crowd:
            report.histogram[cats[ann["category_id"]]] += 1
    return per_image


def _check_box(ann: dict, entry: dict, duplicates: dict, report: Report, where: str) -> None:
    """The dataset's rules (box_rules through CocoDetection's helpers): bad, duplicate or clipped."""
    problem = box_problem(ann.get("bbox"), (entry["height"], entry["width"]))
    problem = problem or repair_note(ann, entry, duplicates)
    if problem is not None:
        report.add(problem[0], f"{where}: {problem[1]}")


def _check_segmentation(seg, hw: tuple[int, int], report: Report, where: str) -> None:
    if seg is None or seg == []:
        return
    if isinstance(seg, dict):  # RLE
        if list(seg.get("size", [])) != [hw[0], hw[1]]:
            report.add("rle_size_mismatch",
                       f"{where}: RLE size {seg.get('size')} differs from the image (h, w) {list(hw)}")
        return
    if not isinstance(seg, list):
        return report.add("invalid_segmentation", f"{where}: segmentation is neither polygons nor RLE")
    for part in seg:
        if not isinstance(part, list) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in part):
            report.add("invalid_polygon", f"{where}: a polygon is not a list of finite numbers")
        elif len(part) % 2:
            report.add("invalid_polygon", f"{where}: a polygon has an odd number of values ({len(part)})")
        elif len(part) < 6:
            report.add("invalid_polygon", f"{where}: a polygon has fewer than 3 points ({len(part) // 2})")


# ---------------------------------------------------------------------- VOC and config
def _parse_skipping(make_dataset, title: str):
    """Build a dataset under on_bad_sample=skip, its own warnings silenced, and report what it skipped."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its one-line summary is replaced by this report
        dataset = make_dataset()
    report = Report(title)
    for kind, messages in dataset.problems.by_kind.items():  # the dataset's own rules and messages
        for message in messages:
            report.add(kind, message)
    return dataset, report


def check_voc(root: str | Path, split: str, classes: list[str] | None = None, decode: bool = False) -> Report:
    """VOC: the dataset's own parsing (bad xml, boxes, classes) plus the image header checks."""
    from detseg.data.datasets.voc import VOCDetection

    dataset, report = _parse_skipping(lambda: VOCDetection(root, split, classes, on_bad_sample="skip"),
                                      f"{root} ({split})")
    for record in dataset._records:
        report.num_images += 1
        report.num_annotations += len(record.objects)
        check_image_file(record.path, record.hw, report, record.voc_id, decode)
        report.histogram.update(o.name for o in record.objects if not o.difficult)
        if not record.objects:
            report.add("no_annotations", f"{record.voc_id} has no objects")
    return report


def check_voc_semantic(root: str | Path, split: str, classes: list[str] | None, decode: bool = False) -> Report:
    """VOC semantic: every listed id has its JPEG and label PNG, both readable, of the same size."""
    from detseg.data.datasets.voc_seg import VOCSegmentation

    dataset, report = _parse_skipping(lambda: VOCSegmentation(root, split, classes, on_bad_sample="skip"),
                                      f"{root} (Segmentation/{split})")
    for record in dataset._records:
        report.num_images += 1
        check_image_file(record.image, record.hw, report, record.voc_id, decode)
        check_image_file(record.labels, record.hw, report, f"{record.voc_id} (label PNG)", decode)
    return report


def check_image_folder(root: str | Path, decode: bool = False) -> Report:
    """ImageFolder classification data: the layout (DatasetError), then every image's header."""
    from detseg.data.datasets.image_folder import scan_image_folder

    classes, items = scan_image_folder(root)
    report = Report(str(root))
    for path, label in items:
        report.num_images += 1
        check_image_file(Path(path), None, report, classes[label], decode)
        report.histogram[classes[label]] += 1
    return report


def check_split(data_cfg, split: str, decode: bool = False) -> Report:
    """The check for ``cfg.data.<split>`` (``split`` is "train" or "val")."""
    check = SPLIT_CHECKS.get(data_cfg.format)
    if check is None:
        raise ValueError(f"data.format must be one of {', '.join(SPLIT_CHECKS)}, got '{data_cfg.format}'")
    return check(data_cfg, split, decode)


def _check_folder_split(data_cfg, split: str, decode: bool) -> Report:
    return check_image_folder(getattr(data_cfg, split).root, decode)


def _check_voc_split(data_cfg, split: str, decode: bool) -> Report:
    split_cfg = getattr(data_cfg, split)
    check = check_voc_semantic if data_cfg.task == "semantic" else check_voc
    return check(split_cfg.root, split_cfg.split, data_cfg.classes, decode)


def _check_coco_split(data_cfg, split: str, decode: bool) -> Report:
    split_cfg = getattr(data_cfg, split)
    if not split_cfg.ann_file:
        raise ValueError(f"set data.{split}.ann_file in the config or as a key=value override")
    return check_coco(split_cfg.ann_file, split_cfg.img_dir, data_cfg.category_ids, decode)


# data.format -> the check of one split
SPLIT_CHECKS = {"coco": _check_coco_split, "voc": _check_voc_split, "imagefolder": _check_folder_split}


def require_clean_data(data_cfg, splits: tuple[str, ...] = ("train",)) -> None:
    """Raise DatasetError with the full report when a split has errors (training start, policy "error")."""
    for split in splits:
        report = check_split(data_cfg, split)
        if not report.ok:
            raise DatasetError(f"dataset check failed for data.{split} (data.on_bad_sample=error):\n"
                               f"{report.text()}\nFix the data, or set data.on_bad_sample=skip to drop bad items.")


# ---------------------------------------------------------------------- both splits
# data.format -> the keys that name a split's data
SPLIT_KEYS = {"coco": ("ann_file",), "voc": ("root", "split"), "imagefolder": ("root",)}


def configured_splits(data_cfg) -> list[str]:
    """"train", and "val" where the config names its data (a config may leave val unset)."""
    keys = SPLIT_KEYS.get(data_cfg.format, ())
    return ["train"] + (["val"] if keys and all(getattr(data_cfg.val, k) for k in keys) else [])


def check_split_or_unreadable(data_cfg, split: str, decode: bool = False) -> Report:
    """``check_split``, with a split whose annotation file, split list or folder cannot be read at all
    reported as one error of its report (so the other split is still checked)."""
    try:
        return check_split(data_cfg, split, decode)
    except (DatasetError, FileNotFoundError) as exc:
        report = Report(f"data.{split}")
        report.add("unreadable_split", str(exc))
        return report

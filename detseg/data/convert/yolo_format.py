"""YOLO txt (ultralytics layout) <-> records. Layout::

    data.yaml                    names (list, or {index: name}), path, and per split its image folder
    images/{split}/**/x.jpg      labels/{split}/**/x.txt: one line per object, values normalised to [0, 1]
                                 by the image width / height:  class cx cy w h   (boxes)
                                 or                             class x1 y1 x2 y2 ...  (YOLO-seg polygons)

An image without a label file has no objects. YOLO has no crowd/difficult flag: such objects are
left out when writing (ultralytics does the same) and counted. A YOLO-seg object's box is its
polygon's extent; objects with several polygon parts are written as one outline (masks.merge_parts).

Precision: values are written with 6 decimals (a box corner moves by < 1e-6 of the image side).
Reading, a pixel coordinate within that precision of a half-pixel is snapped to it: polygons traced
along pixel edges (what mask -> polygon conversions give) then rasterize back to the same pixels,
where a 1e-9 px error would flip a whole rim (pycocotools rounds exact ties one way). A value moves
by at most 2e-6 of the image side in a round trip.
"""
from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

import yaml
from PIL import Image

from detseg.data.convert.files import IMAGE_SUFFIXES, place_image, write_text
from detseg.data.convert.masks import merge_parts, polygons_box, rle_to_polygons
from detseg.data.convert.records import DatasetRecords, ImageRecord, Instance, Split
from detseg.data.errors import DatasetError
from detseg.data.safety import displayed_size, pixel_limit_message, too_many_pixels, unsafe_file_name

DATA_YAML = "data.yaml"
DECIMALS = 6
SNAP = 1e-6  # of the image side: above the 0.75e-6 a corner 'c -/+ size / 2' can be off after rounding


# ----------------------------------------------------------------------------- reading
def read_class_names(root: Path) -> list[str]:
    path = root / DATA_YAML
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise DatasetError(f"{path}: not valid YAML ({exc})") from exc
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict) and sorted(names) == list(range(len(names))):
            return [str(names[i]) for i in range(len(names))]
        if isinstance(names, list) and names:
            return [str(n) for n in names]
        raise DatasetError(f"{path}: 'names' must be a list or a {{0: name, 1: name, ...}} mapping, got {names!r}")
    if (root / "classes.txt").is_file():
        return [line.strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip()]
    raise DatasetError(f"{root}: no {DATA_YAML} (or classes.txt) with the class names")


def find_splits(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "images").iterdir() if p.is_dir()) if (root / "images").is_dir() else []


def read_yolo(root: Path, splits: list[str]) -> DatasetRecords:
    names = read_class_names(root)
    out = []
    for split in splits:
        image_dir, label_dir = root / "images" / split, root / "labels" / split
        if not image_dir.is_dir():
            raise DatasetError(f"{image_dir}: no image folder for split {split!r}")
        files = sorted(p for p in image_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        out.append(Split(split, [_read_image(path, image_dir, label_dir, len(names)) for path in files]))
    return DatasetRecords(names, list(range(1, len(names) + 1)), out)


def _read_image(path: Path, image_dir: Path, label_dir: Path, num_classes: int) -> ImageRecord:
    rel = path.relative_to(image_dir)
    if unsafe_file_name(image_dir, rel.as_posix()):  # a symlink planted in the image folder
        raise DatasetError(f"{path}: {unsafe_file_name(image_dir, rel.as_posix())}")
    try:
        with Image.open(path) as img:
            h, w = displayed_size(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the image header ({exc})") from exc
    if too_many_pixels(h, w):
        raise DatasetError(f"{path}: {pixel_limit_message(h, w)}")
    label_file = (label_dir / rel).with_suffix(".txt")
    instances = _read_labels(label_file, (h, w), num_classes) if label_file.is_file() else []
    return ImageRecord(rel.as_posix(), path, h, w, instances)


def _read_labels(path: Path, hw: tuple[int, int], num_classes: int) -> list[Instance]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    return [_parse_line(line, f"{path}:{n}", hw, num_classes)
            for n, line in enumerate(lines, start=1) if line.strip()]


def _parse_line(line: str, where: str, hw: tuple[int, int], num_classes: int) -> Instance:
    fields = line.split()
    try:
        values = [float(v) for v in fields[1:]]
        label = int(fields[0])
    except ValueError:
        raise DatasetError(f"{where}: expected 'class cx cy w h' or 'class x1 y1 x2 y2 ...' numbers, "
                           f"got {line.strip()!r}") from None
    if not 0 <= label < num_classes:
        raise DatasetError(f"{where}: class {label} is outside 0..{num_classes - 1} (the {num_classes} names)")
    if len(values) != 4 and (len(values) < 6 or len(values) % 2):
        raise DatasetError(f"{where}: {len(values)} values after the class; a box has 4, a polygon an even "
                           "number >= 6")
    if not all(math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in values):
        raise DatasetError(f"{where}: values must be normalised to [0, 1], got {line.strip()!r}")
    h, w = hw
    if len(values) == 4:
        cx, cy, bw, bh = values
        if bw <= 0 or bh <= 0:
            raise DatasetError(f"{where}: box width and height must be positive, got {line.strip()!r}")
        corners = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
        return Instance(label, _clip(tuple(_to_pixels(corners, hw)), hw))
    polygon = _to_pixels(values, hw)
    box = polygons_box([polygon])
    if box[2] <= box[0] or box[3] <= box[1]:
        raise DatasetError(f"{where}: the polygon encloses no area, got {line.strip()!r}")
    return Instance(label, _clip(box, hw), polygons=[polygon])


def _to_pixels(values: list[float], hw: tuple[int, int]) -> list[float]:
    """Normalised x, y, x, y, ... -> pixels, snapped to the half-pixel grid within SNAP (see above)."""
    out = []
    for k, v in enumerate(values):
        side = hw[1] if k % 2 == 0 else hw[0]
        pixels = v * side
        grid = round(pixels * 2) / 2
        out.append(grid if abs(pixels - grid) <= SNAP * side else pixels)
    return out


def _clip(box, hw: tuple[int, int]) -> tuple[float, float, float, float]:
    h, w = hw
    return (min(max(box[0], 0.0), w), min(max(box[1], 0.0), h), min(max(box[2], 0.0), w), min(max(box[3], 0.0), h))


# ----------------------------------------------------------------------------- writing
def write_yolo(records: DatasetRecords, output: Path, image_mode: str, with_masks: bool = True) -> int:
    """Writes the splits and data.yaml; returns the number of crowd/difficult objects left out."""
    left_out = 0
    for split in records.splits:
        for image in split.images:
            place_image(image.source, output / "images" / split.name / image.file_name, image_mode)
            lines = [_line(inst, image, with_masks) for inst in image.instances if not inst.iscrowd]
            left_out += sum(inst.iscrowd for inst in image.instances)
            label_file = output / "labels" / split.name / PurePosixPath(image.file_name).with_suffix(".txt")
            write_text(label_file, "".join(f"{line}\n" for line in lines))
    # ultralytics resolves a relative 'path' against its own datasets folder, not this file's
    data = {"path": str(output.resolve()), **{s.name: f"images/{s.name}" for s in records.splits},
            "names": dict(enumerate(records.class_names))}
    write_text(output / DATA_YAML, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return left_out


def _line(inst: Instance, image: ImageRecord, with_masks: bool) -> str:
    w, h = image.width, image.height
    if with_masks and inst.has_mask:
        parts = inst.polygons or rle_to_polygons(inst.rle, (h, w))
        outline = merge_parts(parts)
        if outline:
            values = [min(max(v / (w if k % 2 == 0 else h), 0.0), 1.0) for k, v in enumerate(outline)]
            return " ".join([str(inst.label), *(f"{v:.{DECIMALS}f}" for v in values)])
    x1, y1, x2, y2 = inst.box
    values = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
    return " ".join([str(inst.label), *(f"{v:.{DECIMALS}f}" for v in values)])

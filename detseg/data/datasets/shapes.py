"""A synthetic "shapes" detection/segmentation dataset, written in COCO and VOC layout.

Every image is rendered from its own random stream, seeded by (seed, split, index), so the
output does not depend on the order of rendering or the number of worker processes: the
same arguments give byte-identical files.

Layout written under ``out_dir``::

    annotations/instances_{train,val}.json   COCO instances, category ids 1..6
    {train,val}/000001.jpg ...               images (COCO file_name is relative to this folder)
    voc/JPEGImages/{split}_000001.jpg        the same images (hard links when possible)
    voc/Annotations/{split}_000001.xml       VOC boxes: 1-based inclusive pixel corners
    voc/ImageSets/Main/{train,val}.txt
    voc/SegmentationClass/{split}_000001.png  semantic maps, VOC palette PNG: 0 background, label + 1
    voc/ImageSets/Segmentation/{train,val}.txt

Objects may occlude each other (later ones on top). Which objects are kept is decided
before anything is painted: an object that would end up less than 40% visible, or whose
visible part would have a hole or a sliver, is never painted, so every visible shape is
annotated and every annotation matches the pixels.
"""
from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detseg.data.palette import write_label_png

CLASS_NAMES = ("circle", "square", "triangle", "star", "hexagon", "ellipse")
SPLITS = ("train", "val")
JPEG_QUALITY = 90
MIN_VISIBLE_FRACTION = 0.4
MIN_OBJECT_SIDE = 14          # px, smallest side of an object's full box
MAX_OBJECT_FRACTION = 0.6     # largest object extent relative to the image's short side
MIN_PART_AREA = 20.0          # px, smallest polygon part of a visible mask
MIN_COLOR_DISTANCE = 100.0    # Euclidean RGB distance to what lies underneath


@dataclass
class _Object:
    label: int                 # index into CLASS_NAMES
    full: np.ndarray           # bool [H, W], the whole shape
    visible: np.ndarray        # bool [H, W], the part not covered by later objects
    color: tuple[int, int, int] = (0, 0, 0)


# ----------------------------------------------------------------------------- geometry
def _unit_outline(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Outline of a shape of circumradius 1 around the origin, float [P, 2]."""
    if kind in ("circle", "ellipse"):
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        minor = rng.uniform(0.4, 0.7) if kind == "ellipse" else 1.0
        return np.stack([np.cos(t), minor * np.sin(t)], axis=1)
    if kind == "star":
        t = np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
    corners = {"square": 4, "triangle": 3, "hexagon": 6}[kind]
    t = np.arange(corners) * 2 * np.pi / corners
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _sample_shape_mask(rng: np.random.Generator, kind: str, hw: tuple[int, int]) -> np.ndarray | None:
    """Rotate, scale and place one shape fully inside the image; None if it came out too small."""
    h, w = hw
    r_max = MAX_OBJECT_FRACTION * min(h, w) / 2
    radius = np.exp(rng.uniform(np.log(MIN_OBJECT_SIDE / 1.6), np.log(r_max)))  # log-uniform: many small ones
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = _unit_outline(kind, rng) @ rot.T * radius
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if (hi - lo).min() < MIN_OBJECT_SIDE or (hi - lo)[0] > w - 2 or (hi - lo)[1] > h - 2:
        return None
    center = rng.uniform(-lo, np.array([w - 1, h - 1]) - hi)
    mask = np.zeros(hw, np.uint8)
    # shift=4: sub-pixel vertex precision, so small shapes keep their form
    cv2.fillPoly(mask, [np.round((pts + center) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _is_clean(visible: np.ndarray) -> bool:
    """True if a visible mask is representable by COCO polygons: no holes, no slivers."""
    contours, hierarchy = cv2.findContours(visible.view(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours or (hierarchy[0][:, 3] >= 0).any():  # a contour with a parent is a hole
        return False
    return all(len(c) >= 3 and cv2.contourArea(c) >= MIN_PART_AREA for c in contours)


def _try_add(objects: list[_Object], label: int, full: np.ndarray) -> bool:
    """Put a new object on top if every object below stays visible enough and clean."""
    updated = []
    for obj in objects:
        visible = obj.visible & ~full
        if visible.sum() < MIN_VISIBLE_FRACTION * obj.full.sum() or not _is_clean(visible):
            return False
        updated.append(visible)
    if not _is_clean(full):
        return False
    for obj, visible in zip(objects, updated):
        obj.visible = visible
    objects.append(_Object(label, full, full.copy()))
    return True


def _place_objects(rng: np.random.Generator, hw: tuple[int, int]) -> list[_Object]:
    target = int(rng.integers(1, 7))
    objects: list[_Object] = []
    for _ in range(8 * target):
        if len(objects) == target:
            break
        label = int(rng.integers(len(CLASS_NAMES)))
        full = _sample_shape_mask(rng, CLASS_NAMES[label], hw)
        if full is not None:
            _try_add(objects, label, full)
    return objects


# ----------------------------------------------------------------------------- painting
def _background(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear gradient between random corner colours, plus thin lines and small blobs (clutter)."""
    h, w = hw
    corners = rng.uniform(0, 255, size=(2, 2, 3)).astype(np.float32)
    image = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)  # float32 [H, W, 3]
    for _ in range(int(rng.integers(2, 7))):
        p1, p2 = rng.integers(0, (w, h), size=(2, 2))
        color = tuple(float(c) for c in rng.integers(0, 256, 3))
        cv2.line(image, tuple(map(int, p1)), tuple(map(int, p2)), color, int(rng.integers(1, 3)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 5))):
        # blobs stay far below MIN_OBJECT_SIDE so they never look like an object
        center = tuple(int(c) for c in rng.integers(0, (w, h)))
        axes = tuple(int(a) for a in rng.integers(1, 5, 2))
        color = tuple(float(c) for c in rng.integers(0, 256, 3))
        cv2.ellipse(image, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
    return image


def _add_noise(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Add zero-mean noise and quantize; the difference of two random bytes is ~4x cheaper than normal()."""
    raw = np.frombuffer(rng.bytes(2 * image.size), np.uint8).reshape(2, *image.shape)
    noise = raw[0].astype(np.float32) - raw[1]
    image += noise * np.float32(rng.uniform(2.0, 8.0) / 104.0)  # 104 = std of that difference
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)


def _pick_color(rng: np.random.Generator, below: list[np.ndarray]) -> tuple[int, int, int]:
    """A random colour far from every colour it is painted over; the best of 20 draws."""
    best, best_dist = None, -1.0
    for _ in range(20):
        color = rng.integers(0, 256, 3).astype(np.float32)
        dist = min(float(np.linalg.norm(color - b)) for b in below)
        if dist > best_dist:
            best, best_dist = color, dist
        if dist >= MIN_COLOR_DISTANCE:
            break
    return tuple(int(c) for c in best)


def _paint(rng: np.random.Generator, image: np.ndarray, objects: list[_Object]) -> None:
    """Paint objects bottom to top, each in a colour contrasting with the pixels it covers."""
    covered = np.zeros(image.shape[:2], bool)
    for i, obj in enumerate(objects):
        # lower objects that overlap this one (conservatively: their full shapes)
        below = [np.array(low.color, np.float32) for low in objects[:i] if (low.full & obj.full).any()]
        free = obj.full & ~covered
        if free.any():
            below.append(image[free].mean(axis=0))
        obj.color = _pick_color(rng, below)
        image[obj.full] = obj.color
        covered |= obj.full


def render_image(rng: np.random.Generator, min_size: int, max_size: int) -> tuple[np.ndarray, list[_Object]]:
    """One RGB uint8 image and its objects (with final visible masks)."""
    hw = tuple(int(s) for s in rng.integers(min_size, max_size + 1, size=2))
    image = _background(rng, hw)
    objects = _place_objects(rng, hw)
    _paint(rng, image, objects)
    return _add_noise(rng, image), objects


# ----------------------------------------------------------------------------- annotations
def _annotate(obj: _Object) -> dict:
    """COCO annotation (without ids) of an object's visible mask."""
    mask = obj.visible.view(np.uint8)
    x, y, w, h = cv2.boundingRect(mask)
    # Contours of the 2x (nearest) upsampled mask, halved, trace the pixel edges: pycocotools
    # rasterizes them back to exactly this mask (contours through pixel centres lose a rim).
    upsampled = cv2.resize(mask, (2 * mask.shape[1], 2 * mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(upsampled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = [(c.reshape(-1) / 2).tolist() for c in contours if len(c) >= 3]
    return {"category_id": obj.label + 1, "bbox": [x, y, w, h], "area": int(mask.sum()),
            "segmentation": polygons, "iscrowd": 0}


def _render_and_write(job: tuple) -> tuple[dict, list[dict]]:
    """Render image ``index`` of ``split``, write its JPEG, return its COCO image entry and annotations."""
    out_dir, split, index, seed, min_size, max_size = job
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    image, objects = render_image(rng, min_size, max_size)
    name = f"{index + 1:06d}.jpg"
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok, "JPEG encoding failed"
    (Path(out_dir) / split / name).write_bytes(data.tobytes())
    entry = {"id": index + 1, "file_name": name, "height": image.shape[0], "width": image.shape[1]}
    write_label_png(Path(out_dir) / "voc" / "SegmentationClass" / f"{_voc_stem(split, name)}.png",
                    _semantic_map(objects, image.shape[:2]))
    return entry, [_annotate(obj) for obj in objects]


def _semantic_map(objects: list[_Object], hw: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W]: 0 background, label + 1 on each object's visible pixels (they never overlap)."""
    labels = np.zeros(hw, np.uint8)
    for obj in objects:
        labels[obj.visible] = obj.label + 1
    return labels


def _render_split(out_dir: Path, split: str, count: int, seed: int, sizes: tuple[int, int],
                  workers: int) -> list[tuple[dict, list[dict]]]:
    (out_dir / split).mkdir(parents=True, exist_ok=True)
    (out_dir / "voc" / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    jobs = [(str(out_dir), split, i, seed, *sizes) for i in range(count)]
    if workers <= 1 or count < 64:  # process start-up costs more than it saves on tiny sets
        return [_render_and_write(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_render_and_write, jobs, chunksize=32))


def _coco_dict(records: list[tuple[dict, list[dict]]], info: dict) -> dict:
    images, annotations = [], []
    for entry, anns in records:
        images.append(entry)
        for ann in anns:
            annotations.append({**ann, "id": len(annotations) + 1, "image_id": entry["id"]})
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASS_NAMES)]
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}


# ----------------------------------------------------------------------------- VOC
def _voc_xml(file_name: str, entry: dict, anns: list[dict]) -> str:
    """Standard VOC xml; COCO [x, y, w, h] on pixel edges -> 1-based inclusive pixel corners."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "voc"
    ET.SubElement(root, "filename").text = file_name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", entry["width"]), ("height", entry["height"]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for ann in anns:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = CLASS_NAMES[ann["category_id"] - 1]
        for tag, value in (("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ET.SubElement(obj, tag).text = value
        x, y, w, h = ann["bbox"]
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x + 1), ("ymin", y + 1), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(box, tag).text = str(int(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # other filesystem, or links not supported
        shutil.copyfile(src, dst)


def _voc_stem(split: str, file_name: str) -> str:
    return f"{split}_{Path(file_name).stem}"  # prefix: train and val share one folder


def _write_voc(out_dir: Path, split: str, records: list[tuple[dict, list[dict]]]) -> None:
    voc = out_dir / "voc"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for entry, anns in records:
        stem = _voc_stem(split, entry["file_name"])
        _link_or_copy(out_dir / split / entry["file_name"], voc / "JPEGImages" / f"{stem}.jpg")
        (voc / "Annotations" / f"{stem}.xml").write_text(_voc_xml(f"{stem}.jpg", entry, anns))
        names.append(stem)
    (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))


# ----------------------------------------------------------------------------- entry point
def generate_shapes_dataset(out_dir: str | os.PathLike, num_train: int = 2000, num_val: int = 300,
                            seed: int = 0, min_size: int = 160, max_size: int = 256,
                            workers: int | None = None) -> dict[str, dict[str, int]]:
    """Write the shapes dataset (COCO and VOC layouts) under ``out_dir``; returns counts per split.

    ``workers`` (default: all CPU cores) only changes speed, never the output.
    """
    if not 2 * MIN_OBJECT_SIDE <= min_size <= max_size:
        raise ValueError(f"need {2 * MIN_OBJECT_SIDE} <= min_size <= max_size, got {min_size}, {max_size}")
    out_dir = Path(out_dir)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    workers = os.cpu_count() or 1 if workers is None else workers
    summary = {}
    for split, count in zip(SPLITS, (num_train, num_val)):
        records = _render_split(out_dir, split, count, seed, (min_size, max_size), workers)
        info = {"description": f"detseg synthetic shapes, {split} split", "seed": seed,
                "min_size": min_size, "max_size": max_size, "version": "1"}
        coco = _coco_dict(records, info)
        text = json.dumps(coco, sort_keys=True, separators=(",", ":"))
        (out_dir / "annotations" / f"instances_{split}.json").write_text(text)
        _write_voc(out_dir, split, records)
        summary[split] = {"images": len(coco["images"]), "annotations": len(coco["annotations"])}
    return summary

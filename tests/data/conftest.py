"""Hand-written COCO and VOC datasets covering the awkward cases of real files."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's list-of-counts RLE (column-major runs, starting with zeros)."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"counts": counts, "size": list(mask.shape)}


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": list(rle["size"])}


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tree_hashes():
    """Function: folder -> {relative path: sha256} of every file below it."""
    return _tree_hashes


def _images(img_dir: Path) -> list[dict]:
    """Four images: RGB JPEG, grayscale PNG, RGBA PNG, palette PNG with transparency."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(img_dir / "rgb.jpg", quality=95)
    Image.fromarray(np.full((24, 20), 77, np.uint8), mode="L").save(img_dir / "gray.png")
    rgba = np.zeros((16, 18, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, mode="RGBA").save(img_dir / "rgba.png")
    palette = Image.fromarray(np.zeros((12, 14), np.uint8), mode="P")
    palette.putpalette([10, 20, 30] * 256)
    palette.save(img_dir / "palette.png", transparency=0)
    sizes = {"rgb.jpg": (30, 40), "gray.png": (24, 20), "rgba.png": (16, 18), "palette.png": (12, 14)}
    return [{"id": i, "file_name": name, "height": h, "width": w}
            for i, (name, (h, w)) in zip((10, 20, 30, 40), sizes.items())]


def _annotations() -> list[dict]:
    crowd = np.zeros((30, 40), np.uint8)
    crowd[20:28, 2:12] = 1
    rle_mask = np.zeros((30, 40), np.uint8)
    rle_mask[5:15, 25:37] = 1
    return [
        # two-part polygon (category 3): a square and a triangle
        {"id": 1, "image_id": 10, "category_id": 3, "iscrowd": 0, "bbox": [2.0, 2.0, 18.0, 10.0], "area": 80.0,
         "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10], [12, 4, 20, 4, 16, 12]]},
        {"id": 2, "image_id": 10, "category_id": 7, "iscrowd": 0, "bbox": [25, 5, 12, 10], "area": 120,
         "segmentation": compressed_rle(rle_mask)},
        {"id": 3, "image_id": 10, "category_id": 42, "iscrowd": 1, "bbox": [2, 20, 10, 8], "area": 80,
         "segmentation": uncompressed_rle(crowd)},
        # partly outside the 18x16 image: clipped to [10, 4, 18, 16]
        {"id": 4, "image_id": 30, "category_id": 42, "iscrowd": 0, "bbox": [10, 4, 12, 20], "area": 96,
         "segmentation": [[10, 4, 17, 4, 17, 15, 10, 15]]},
    ]


@pytest.fixture
def coco_case(tmp_path) -> dict:
    """A COCO dataset with ids 3, 7, 42, multi-part polygons, both RLE kinds, a crowd region,
    an image without annotations and grayscale / RGBA / palette PNGs. Returns paths and the dict."""
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    data = {
        "images": _images(img_dir),
        "annotations": _annotations(),
        "categories": [{"id": 42, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "bird"}],
    }
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))

    def write(modified: dict, name: str = "modified.json") -> Path:
        """Write a modified copy of the dict next to the original; returns its path."""
        path = tmp_path / name
        path.write_text(json.dumps(modified))
        return path

    return {"ann_file": ann_file, "img_dir": img_dir, "data": data, "root": tmp_path, "write": write}


def _voc_xml(name: str, size: tuple[int, int], objects: list[tuple]) -> str:
    """objects: (class name, difficult, xmin, ymin, xmax, ymax)."""
    parts = [f"<annotation><filename>{name}.jpg</filename>",
             f"<size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>"]
    for cls, difficult, *box in objects:
        coords = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        parts.append(f"<object><name>{cls}</name><difficult>{difficult}</difficult><bndbox>{coords}</bndbox></object>")
    return "".join(parts) + "</annotation>"


@pytest.fixture
def voc_xml():
    """Function: (name, (h, w), [(class, difficult, xmin, ymin, xmax, ymax), ...]) -> xml text."""
    return _voc_xml


@pytest.fixture
def voc_case(tmp_path) -> Path:
    """A VOC root with two 30x40 images; one difficult object; boxes in 1-based pixels."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (tmp_path / sub).mkdir(parents=True)
    objects = {
        "a": [("person", 0, 1, 1, 10, 20), ("car", 1, 5, 6, 30, 25)],
        "b": [("car", 0, 21, 11, 40, 30)],
    }
    for name, objs in objects.items():
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "JPEGImages" / f"{name}.jpg")
        (tmp_path / "Annotations" / f"{name}.xml").write_text(_voc_xml(name, (30, 40), objs))
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\nb\n")
    return tmp_path

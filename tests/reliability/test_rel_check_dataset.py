"""Issue 7 items 1, 2, 4, 5: the dataset check (tool, library, training start) and unsafe/huge images."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reliability.conftest import CONFIG, TINY
from detseg.data.check import check_coco
from detseg.data.datasets.coco import CocoDetection
from detseg.data.errors import DatasetError

EXPECTED_ERRORS = {
    "missing_file", "empty_file", "unreadable_image", "truncated_image", "size_mismatch", "invalid_box",
    "box_outside_image", "invalid_polygon", "rle_size_mismatch", "unknown_category", "duplicate_annotation_id",
    "unsafe_path", "image_too_large",
}
EXPECTED_WARNINGS = {"exif_orientation", "box_partly_outside", "no_annotations", "only_crowd"}


def _png(path: Path, hw=(20, 30)) -> None:
    Image.fromarray(np.full((*hw, 3), 120, np.uint8)).save(path)


def _jpeg_bytes(hw=(20, 30), orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)).save(
        buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _images(img_dir: Path) -> list[dict]:
    img_dir.mkdir()
    for name in ("ok.png", "crowd.png", "noann.png", "wrongsize.png", "huge.png"):
        _png(img_dir / name)
    (img_dir / "exif.jpg").write_bytes(_jpeg_bytes((20, 30), orientation=6))  # displayed 30 high, 20 wide
    (img_dir / "empty.jpg").write_bytes(b"")
    (img_dir / "junk.jpg").write_text("not an image")
    full = _jpeg_bytes()
    (img_dir / "trunc.jpg").write_bytes(full[: len(full) * 2 // 3])  # header intact, scan data cut
    _png(img_dir.parent / "outside.png")
    sizes = {"ok.png": (20, 30), "crowd.png": (20, 30), "noann.png": (20, 30), "wrongsize.png": (25, 30),
             "exif.jpg": (30, 20), "missing.jpg": (20, 30), "empty.jpg": (20, 30), "junk.jpg": (20, 30),
             "trunc.jpg": (20, 30), "../outside.png": (20, 30), "huge.png": (100_000, 100_000)}
    return [{"id": i, "file_name": n, "height": h, "width": w} for i, (n, (h, w)) in enumerate(sizes.items(), 1)]


def _annotations() -> list[dict]:
    def ann(i, bbox, cat=1, **extra):
        return {"id": i, "image_id": 1, "category_id": cat, "iscrowd": 0, "bbox": bbox, "area": 1.0, **extra}

    return [
        ann(1, [1, 1, 5, 5], segmentation=[[1, 1, 6, 1, 6, 6]]),
        ann(2, [1, 1, 0, 5]),                                   # zero width
        ann(3, [1, float("nan"), 5, 5]),                        # NaN
        ann(4, [40, 1, 5, 5]),                                  # entirely outside the 30-wide image
        ann(5, [25, 1, 10, 5], cat=2),                          # partly outside: warning
        ann(6, [1, 1, 5, 5], segmentation=[[1, 1, 6, 1, 6]]),   # odd number of values
        ann(7, [1, 1, 5, 5], segmentation=[[1, 1, 6, 1]]),      # two points
        ann(8, [1, 1, 5, 5], segmentation={"counts": [0, 4], "size": [2, 2]}),  # RLE of another size
        ann(9, [1, 1, 5, 5], cat=99),                           # unknown category
        ann(9, [2, 2, 5, 5]),                                   # duplicate id
        {**ann(10, [1, 1, 5, 5]), "image_id": 2, "iscrowd": 1},  # crowd.png: only crowd
        {**ann(11, [1, 1, 5, 5]), "image_id": 5},               # exif.jpg: box in displayed pixels
    ]


@pytest.fixture
def bad_coco(tmp_path) -> dict:
    data = {"images": _images(tmp_path / "images"), "annotations": _annotations(),
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))
    return {"ann_file": ann_file, "img_dir": tmp_path / "images", "root": tmp_path, "data": data}


def _tree_hashes(root: Path) -> dict:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_check_reports_every_problem_kind_and_histogram(bad_coco):
    report = check_coco(bad_coco["ann_file"], bad_coco["img_dir"])
    assert EXPECTED_ERRORS <= set(report.errors), sorted(report.problems)
    assert EXPECTED_WARNINGS <= set(report.problems), sorted(report.problems)
    assert not report.ok
    assert report.histogram == {"cat": 9, "dog": 1}  # crowd and unknown-category annotations excluded
    text = report.text()
    assert "ERROR truncated_image: 1" in text and "trunc.jpg" in text and "warning exif_orientation" in text
    assert "does not exist" not in report.problems.get("size_mismatch", [""])[0]


def test_exif_image_with_displayed_size_is_only_a_warning(bad_coco):
    report = check_coco(bad_coco["ann_file"], bad_coco["img_dir"])
    assert not any("exif.jpg" in m for msgs in report.errors.values() for m in msgs)


def test_tool_exit_codes_and_never_modifies_files(bad_coco, shapes_paths, run_tool):
    before = _tree_hashes(bad_coco["root"])
    code, out, _ = run_tool("check_dataset", CONFIG, f"data.train.ann_file={bad_coco['ann_file']}",
                            f"data.train.img_dir={bad_coco['img_dir']}")
    assert code == 1 and "ERROR missing_file" in out and "annotations per class" in out
    assert _tree_hashes(bad_coco["root"]) == before
    code, out, _ = run_tool("check_dataset", CONFIG, "--split", "val", f"data.val.ann_file={shapes_paths['val_json']}",
                            f"data.val.img_dir={shapes_paths['val_dir']}")
    assert code == 0 and "0 error(s)" in out


def test_training_stops_before_the_first_step_with_the_report(bad_coco, run_tool, tmp_path):
    out_dir = tmp_path / "run"
    code, _, err = run_tool("train", CONFIG, "--output-dir", out_dir, *TINY, "train.max_iters=2",
                            "data.on_bad_sample=error", f"data.train.ann_file={bad_coco['ann_file']}",
                            f"data.train.img_dir={bad_coco['img_dir']}")
    assert code == 2 and "dataset check failed" in err and "truncated_image" in err
    assert not (out_dir / "last.pt").exists() and not (out_dir / "metrics.jsonl").exists()


# ------------------------------------------------------------------ item 4: paths leaving the image root
def _one_image_coco(tmp_path: Path, file_name: str) -> Path:
    data = {"images": [{"id": 1, "file_name": file_name, "height": 20, "width": 30}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "cat"}]}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_file_names_leaving_the_image_root_are_refused(tmp_path, kind):
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    secret = tmp_path / "secret.png"
    _png(secret)
    name = {"absolute": str(secret), "dotdot": "../secret.png", "symlink": "link.png"}[kind]
    if kind == "symlink":
        os.symlink(secret, img_dir / "link.png")
    ann_file = _one_image_coco(tmp_path, name)
    with pytest.raises(DatasetError, match="unsafe_path") as info:
        CocoDetection(ann_file, img_dir, on_bad_sample="error")
    assert name in str(info.value)
    with pytest.warns(UserWarning, match="unsafe_path"):
        dataset = CocoDetection(ann_file, img_dir, on_bad_sample="skip")
    assert len(dataset) == 0 and dataset.skipped == {"unsafe_path": 1}
    assert "unsafe_path" in check_coco(ann_file, img_dir).errors


def test_symlink_inside_the_root_is_allowed(tmp_path):
    img_dir = tmp_path / "images"
    (img_dir / "sub").mkdir(parents=True)
    _png(img_dir / "sub" / "real.png")
    os.symlink(img_dir / "sub" / "real.png", img_dir / "link.png")
    dataset = CocoDetection(_one_image_coco(tmp_path, "link.png"), img_dir)
    assert dataset[0]["image"].shape == (3, 20, 30)


# ------------------------------------------------------------------ item 5: decompression bombs
def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header claims w x h pixels but holds no image data (a bomb needs no payload to test)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_decompression_bomb_is_bad_data_not_an_allocation(tmp_path):
    from detseg.data.datasets.base import read_rgb

    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 60_000, 60_000)  # 3.6 Gpx: decoding would need ~10 GB
    with pytest.raises(DatasetError, match="pixels exceeds the limit|decompression bomb"):
        read_rgb(str(bomb))
    assert "image_too_large" in check_coco(_bomb_json(tmp_path, 60_000), tmp_path).errors


def _bomb_json(tmp_path: Path, side: int) -> Path:
    data = {"images": [{"id": 1, "file_name": "bomb.png", "height": side, "width": side}],
            "annotations": [], "categories": [{"id": 1, "name": "cat"}]}
    path = tmp_path / "bomb.json"
    path.write_text(json.dumps(data))
    return path


def test_huge_size_in_annotation_file_is_bad_data(tmp_path):
    _png(tmp_path / "bomb.png")
    ann_file = _bomb_json(tmp_path, 1_000_000)
    with pytest.raises(DatasetError, match="image_too_large"):
        CocoDetection(ann_file, tmp_path, on_bad_sample="error")
    with pytest.warns(UserWarning, match="image_too_large"):
        assert len(CocoDetection(ann_file, tmp_path, on_bad_sample="skip")) == 0

"""Dataset conversion refuses bad input with the file / line / annotation named, and never writes over data."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from detseg.data.convert import convert
from detseg.data.errors import DatasetError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def yolo_root(coco_case, tmp_path) -> Path:
    out = tmp_path / "yolo"
    convert("coco", "yolo", coco_case["ann_file"], out, image_dir=coco_case["img_dir"], with_masks=False)
    return out


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.2 abc", "expected 'class cx cy w h'"),
    ("5 0.5 0.5 0.2 0.2", "class 5 is outside 0..2"),
    ("1 0.5 0.5 0.2", "3 values after the class"),
    ("1 0.5 0.5 1.7 0.2", "normalised to [0, 1]"),
    ("1 0.5 0.5 0.0 0.2", "must be positive"),
    ("1 0.1 0.1 0.1 0.1 0.1 0.1", "encloses no area"),
])
def test_bad_yolo_line_names_file_and_line(yolo_root, tmp_path, line, message):
    label_file = yolo_root / "labels" / "train" / "rgb.txt"
    label_file.write_text(label_file.read_text() + line + "\n")  # line 3
    with pytest.raises(DatasetError, match=re.escape(message)) as info:
        convert("yolo", "coco", yolo_root, tmp_path / "out")
    assert f"{label_file}:3" in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing is written when the input is bad


def test_yolo_without_class_names(yolo_root, tmp_path):
    (yolo_root / "data.yaml").unlink()
    with pytest.raises(DatasetError, match="no data.yaml"):
        convert("yolo", "voc", yolo_root, tmp_path / "out")


def test_coco_unknown_category_names_the_annotation(coco_case, tmp_path):
    data = coco_case["data"]
    data["annotations"][1]["category_id"] = 99
    with pytest.raises(DatasetError, match=r"annotation id 2 .*category_id 99"):
        convert("coco", "voc", coco_case["write"](data), tmp_path / "out", image_dir=coco_case["img_dir"])


def test_voc_class_outside_the_given_list_names_the_image(voc_case, tmp_path):
    with pytest.raises(DatasetError, match=r"a\.xml: class 'car' is not in \['person'\]"):
        convert("voc", "yolo", voc_case, tmp_path / "out", splits=["train"], classes=["person"])


def test_non_empty_output_needs_overwrite_and_input_is_untouched(coco_case, tmp_path, tree_hashes):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = tree_hashes(coco_case["img_dir"])
    args = ("coco", "yolo", coco_case["ann_file"], out)
    with pytest.raises(FileExistsError, match="not empty; pass --overwrite"):
        convert(*args, image_dir=coco_case["img_dir"])
    convert(*args, image_dir=coco_case["img_dir"], overwrite=True, image_mode="link")
    assert (out / "keep.txt").read_text() == "mine" and (out / "labels/train/rgb.txt").is_file()
    convert(*args, image_dir=coco_case["img_dir"], overwrite=True, image_mode="link")  # replaces its own links
    assert tree_hashes(coco_case["img_dir"]) == before


def test_output_inside_the_input_is_refused(shapes_root, tmp_path):
    with pytest.raises(ValueError, match="overlaps the input"):
        convert("coco", "voc", shapes_root, shapes_root / "converted")
    assert not (shapes_root / "converted").exists()


def test_cli_reports_one_line_and_exit_code_2(coco_case, tmp_path):
    result = subprocess.run([sys.executable, "tools/convert_dataset.py", "--from", "coco", "--to", "yolo",
                             "--input", str(coco_case["ann_file"]), "--output-dir", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "pass --image-dir" in result.stderr and "Traceback" not in result.stderr
    ok = subprocess.run([sys.executable, "tools/convert_dataset.py", "--from", "coco", "--to", "voc",
                         "--input", str(coco_case["ann_file"]), "--image-dir", str(coco_case["img_dir"]),
                         "--output-dir", str(tmp_path / "voc")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "train: 4 images, 4 objects" in ok.stdout
    assert (tmp_path / "voc" / "ImageSets/Main/train.txt").read_text().split() == ["rgb", "gray", "rgba", "palette"]

"""Classification data: ImageFolder reading and its errors, the shape-crops generator, the data check."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detseg.config import load_config
from detseg.data.build import build_dataset
from detseg.data.check import check_split
from detseg.data.collate import collate
from detseg.data.datasets.image_folder import ImageFolderClassification
from detseg.data.datasets.shape_crops import generate_shape_crops
from detseg.data.datasets.shapes import CLASS_NAMES
from detseg.data.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, color: int, hw=(20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*hw, 3), color, np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path) -> Path:
    """cat: 2 images (one PNG), dog: 1 image; a stray text file is ignored."""
    _write(tmp_path / "dog" / "a.jpg", 10)
    _write(tmp_path / "cat" / "b.png", 20, (16, 12))
    _write(tmp_path / "cat" / "a.jpg", 30)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_folder_labels_are_sorted_class_folders(folder):
    dataset = ImageFolderClassification(folder)
    assert dataset.class_names == ["cat", "dog"] and dataset.category_ids == [0, 1]
    assert len(dataset) == 3
    samples = [dataset[i] for i in range(3)]
    assert [int(s["class_label"]) for s in samples] == [0, 0, 1]  # cat/a.jpg, cat/b.png, dog/a.jpg
    assert samples[1]["image"].shape == (3, 16, 12) and samples[1]["image"].dtype == torch.uint8
    assert samples[1]["orig_size"] == (16, 12)
    assert int(samples[1]["image"][0, 0, 0]) == 20


def test_collate_stacks_class_labels(folder):
    dataset = ImageFolderClassification(folder)
    batch = collate([dataset[2], dataset[0]])
    assert batch.class_labels.tolist() == [1, 0] and batch.class_labels.dtype == torch.int64
    assert batch.images.shape == (2, 3, 20, 30)


def test_empty_class_folder_is_named(folder):
    (folder / "bird").mkdir()
    with pytest.raises(DatasetError, match=r"class folder\(s\) without images: .*bird"):
        ImageFolderClassification(folder)


def test_root_without_class_folders_and_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="no class sub-folders"):
        ImageFolderClassification(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        ImageFolderClassification(tmp_path / "nowhere")


def test_unreadable_image_is_an_error_or_skipped(folder):
    bad = folder / "cat" / "a.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"cat/a\.jpg: cannot decode"):
        ImageFolderClassification(folder)[0]
    skipping = ImageFolderClassification(folder, on_bad_sample="skip")
    with pytest.warns(UserWarning, match="skipping image"):
        sample = skipping[0]
    assert int(sample["class_label"]) == 0 and sample["orig_size"] == (16, 12)  # the next one: cat/b.png
    assert skipping.skipped == {"unreadable_image": 1}


def test_data_check_reports_unreadable_image(folder):
    (folder / "dog" / "a.jpg").write_bytes(b"")
    cfg = load_config(REPO / "configs/classification/shape_crops_resnet18.yaml", [f"data.train.root={folder}"])
    report = check_split(cfg.data, "train")
    assert not report.ok and "empty_file" in report.errors
    assert report.histogram == {"cat": 2, "dog": 1}


def test_task_and_format_must_agree(folder):
    cfg = load_config(REPO / "configs/classification/shape_crops_resnet18.yaml", ["data.format=coco"])
    with pytest.raises(ValueError, match="classification goes with data.format imagefolder"):
        build_dataset(cfg.data, "train", train=True)
    cfg = load_config(REPO / "configs/classification/shape_crops_resnet18.yaml")
    cfg.data.task = "detect"  # the loader refuses it already (tests/config); the dataset builder checks too
    with pytest.raises(ValueError, match="data.task must be one of detection, semantic, classification"):
        build_dataset(cfg.data, "train", train=True)


def test_config_transforms_crop_to_fixed_size(folder):
    cfg = load_config(REPO / "configs/classification/shape_crops_resnet18.yaml",
                      [f"data.train.root={folder}", f"data.val.root={folder}"])
    train, val = build_dataset(cfg.data, "train", True), build_dataset(cfg.data, "val", False)
    assert train[(1, 7)]["image"].shape == val[1]["image"].shape == (3, 64, 64)
    assert torch.equal(train[(0, 7)]["image"], train[(0, 7)]["image"])  # seeded augmentation repeats


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_shape_crops_are_deterministic_with_all_class_folders(tmp_path):
    first = generate_shape_crops(tmp_path / "a", num_train=6, num_val=2, seed=3, crop_size=32, workers=1)
    subprocess.run([sys.executable, str(REPO / "tools/make_dataset.py"), "shape-crops", "--output-dir", str(tmp_path / "b"),
                    "--num-train", "6", "--num-val", "2", "--seed", "3", "--crop-size", "32", "--workers", "2"],
                   check=True, capture_output=True)
    hashes = _hashes(tmp_path / "a")
    assert hashes and hashes == _hashes(tmp_path / "b")
    for split in ("train", "val"):
        assert sorted(p.name for p in (tmp_path / "a" / split).iterdir()) == sorted(CLASS_NAMES)
        assert sum(first[split].values()) == len(list((tmp_path / "a" / split).rglob("*.jpg")))
    crop = Image.open(next((tmp_path / "a" / "train").rglob("*.jpg")))
    assert crop.size == (32, 32) and crop.mode == "RGB"
    other = generate_shape_crops(tmp_path / "c", num_train=6, num_val=2, seed=4, crop_size=32, workers=1)
    assert other != first or _hashes(tmp_path / "c") != hashes

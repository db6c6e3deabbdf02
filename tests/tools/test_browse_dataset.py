"""tools/browse_dataset.py draws the ground truth of the *transformed* samples (what training feeds the model)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from detseg.data.transforms import resized_shape
from detseg.data.sampler import InfiniteSampler
from detseg.config import load_config
from detseg.reports.browse import build_browse_dataset

ROOT = Path(__file__).resolve().parents[2]
SEED = 42  # train.seed default: the sampler's order


def _browse(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "tools/browse_dataset.py", *map(str, args)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _edge_drawn(picture: np.ndarray, plain: np.ndarray, x: float, y1: float, y2: float) -> float:
    """Fraction of the vertical line x, y1..y2 (ends trimmed) where the picture differs from the plain
    transformed image, i.e. where something was drawn (the 1 px line may sit next to x after rounding)."""
    hits = []
    for dx in (-1, 0, 1):
        xs = int(round(min(max(x + dx, 0), picture.shape[1] - 1)))
        rows = slice(int(y1) + 4, int(y2) - 3)
        diff = np.abs(picture[rows, xs].astype(float) - plain[rows, xs]).max(axis=1)
        hits.append(float((diff > 40).mean()) if len(diff) else 1.0)
    return max(hits)


def test_train_pictures_show_the_flipped_resized_boxes(shapes_paths, tmp_path):
    """flip_prob=1: every box is mirrored. The drawn outlines sit on the mirrored boxes, not the originals."""
    out = tmp_path / "browse"
    data = [f"data.train.ann_file={shapes_paths['train_json']}", f"data.train.img_dir={shapes_paths['train_dir']}",
            "data.min_size_train=[128]", "data.max_size_train=192", "data.flip_prob=1.0", "data.num_workers=0"]
    result = _browse("configs/faster_rcnn/shapes.yaml", "--output-dir", out, "--limit", 5, *data)
    coco = json.loads(Path(shapes_paths["train_json"]).read_text())
    images = sorted(coco["images"], key=lambda e: e["id"])
    keys = [k for k, _ in zip(InfiniteSampler(len(images), SEED, True, with_seeds=True), range(5))]
    files = sorted(out.glob("*.jpg"))
    assert [f.name for f in files] == [f"{p:04d}_{images[i]['id']}.jpg" for p, (i, _) in enumerate(keys)]
    cfg = load_config(ROOT / "configs/faster_rcnn/shapes.yaml", data)
    dataset = build_browse_dataset(cfg, "train")
    on_flipped, on_original = [], []
    for path, (index, seed) in zip(files, keys):
        entry = images[index]
        picture = np.asarray(Image.open(path).convert("RGB"))
        plain = dataset[(index, seed)]["image"].permute(1, 2, 0).numpy().astype(float)
        h, w = resized_shape((entry["height"], entry["width"]), 128, 192)
        assert picture.shape[:2] == (h, w)
        sx, sy = w / entry["width"], h / entry["height"]
        for ann in (a for a in coco["annotations"] if a["image_id"] == entry["id"]):
            x, y, bw, bh = ann["bbox"]
            on_flipped.append(_edge_drawn(picture, plain, w - (x + bw) * sx, y * sy, (y + bh) * sy))
            on_original.append(_edge_drawn(picture, plain, x * sx, y * sy, (y + bh) * sy))
    assert np.mean(on_flipped) > 0.8 and np.mean(on_original) < 0.3, (np.mean(on_flipped), np.mean(on_original))
    assert "5 train samples" in result.stdout


def test_semantic_val_pictures_have_the_evaluation_size_and_refuse_to_overwrite(shapes_paths, tmp_path):
    out = tmp_path / "browse"
    voc = shapes_paths["voc_root"]
    args = ["configs/fcn/shapes_8s.yaml", "--split", "val", "--output-dir", out, "--limit", 3,
            f"data.val.root={voc}", "data.min_size_test=96", "data.max_size_test=128"]
    _browse(*args)
    ids = (voc / "ImageSets/Main/val.txt").read_text().split()[:3]
    files = sorted(out.glob("*.jpg"))
    assert [f.name for f in files] == [f"{p:04d}_{p}.jpg" for p in range(3)]  # VOC image ids are indices
    for path, voc_id in zip(files, ids):
        with Image.open(voc / "JPEGImages" / f"{voc_id}.jpg") as source, Image.open(path) as picture:
            h, w = resized_shape(source.size[::-1], 96, 128)
            assert picture.size == (w, h) and path.stat().st_size > 0
            tinted = np.asarray(picture.convert("RGB"), float)
            plain = np.asarray(source.convert("RGB").resize((w, h), Image.BILINEAR), float)
            assert np.abs(tinted - plain).mean() > 3  # the class overlay is drawn
    again = subprocess.run([sys.executable, "tools/browse_dataset.py", *map(str, args)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr

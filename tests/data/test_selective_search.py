"""Selective search: boxes inside the image, min size, duplicates removed, clear missing-contrib error."""
from __future__ import annotations

import numpy as np
import pytest

from detseg.data import selective_search as ss


def _image(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 200, np.uint8)
    img[10:50, 20:70] = (255, 0, 0)
    img[55:90, 80:120] = (0, 0, 255)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["fast", "quality"])
def test_boxes_inside_image_and_large_enough(mode):
    boxes = ss.selective_search(_image(), mode=mode, max_proposals=2000, min_size=5)
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= 128).all() and (boxes[:, 3] <= 96).all()
    assert ((boxes[:, 2:] - boxes[:, :2]) >= 5).all()
    assert len(np.unique(boxes, axis=0)) == len(boxes)


def test_max_proposals_and_downscale_maps_back():
    img = _image(192, 256)
    few = ss.selective_search(img, max_proposals=7)
    assert len(few) <= 7
    small = ss.selective_search(img, max_side=128, min_size=1)
    assert (small[:, 2] <= 256).all() and (small[:, 3] <= 192).all()
    assert small[:, 2].max() > 128  # boxes were scaled back to the original size


def test_postprocess_drops_small_and_exact_duplicates_keeping_order():
    rects = np.array([[0, 0, 10, 10], [5, 5, 2, 20], [0, 0, 10, 10], [1, 1, 30, 30], [-5, 0, 10, 10]], np.float32)
    out = ss.postprocess(rects, 1.0, (20, 25), max_proposals=10, min_size=3)
    np.testing.assert_array_equal(out, [[0, 0, 10, 10], [1, 1, 25, 20], [0, 0, 5, 10]])


def test_unknown_mode():
    with pytest.raises(ValueError, match="fast"):
        ss.selective_search(_image(), mode="slow")


def test_missing_ximgproc_names_the_fix(monkeypatch):
    import cv2

    monkeypatch.delattr(cv2, "ximgproc", raising=False)
    with pytest.raises(ImportError, match="opencv-contrib-python-headless"):
        ss.selective_search(_image())


@pytest.mark.parametrize("config", ["rcnn", "sppnet", "fast_rcnn"])
def test_region_models_without_contrib_say_selective_search_is_unavailable(config, monkeypatch, shapes_paths, tmp_path,
                                                                           capsys):
    """An OpenCV without contrib (opencv-python-headless alone, as GPU images ship it): training any of the
    R-CNN family stops with one line naming the package, before any work."""
    from pathlib import Path

    import cv2

    from detseg.cli.train import run

    monkeypatch.delattr(cv2, "ximgproc", raising=False)
    root = Path(__file__).resolve().parents[2]
    p = shapes_paths
    with pytest.raises(SystemExit) as stopped:
        run([str(root / f"configs/{config}/shapes.yaml"), "--output-dir", str(tmp_path / "run"),
             f"data.train.ann_file={p['train_json']}", f"data.train.img_dir={p['train_dir']}",
             f"data.val.ann_file={p['val_json']}", f"data.val.img_dir={p['val_dir']}",
             f"model.proposals.cache_dir={tmp_path / 'proposals'}"])
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: selective search unavailable: needs opencv-contrib-python-headless")
    assert not (tmp_path / "proposals").exists() or not any((tmp_path / "proposals").iterdir())

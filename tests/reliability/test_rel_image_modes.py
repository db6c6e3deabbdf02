"""Issue 7 item 3: every PIL image mode becomes correct 3-channel uint8; EXIF orientation lines boxes up."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reliability.conftest import CONFIG
from detseg.data.check import check_coco
from detseg.data.datasets.base import read_rgb
from detseg.data.datasets.coco import CocoDetection


def _save(tmp_path: Path, name: str, img: Image.Image, **kwargs) -> Path:
    path = tmp_path / name
    img.save(path, **kwargs)
    return path


def _modes(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (file, expected RGB pixel at (0, 0))"""
    palette = Image.fromarray(np.zeros((6, 8), np.uint8), mode="P")
    palette.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    cases = {
        "L": (Image.new("L", (8, 6), 77), {}, [77, 77, 77]),
        "LA": (Image.new("LA", (8, 6), (90, 128)), {}, [90, 90, 90]),
        "P_transparency": (palette, {"transparency": 0}, [10, 20, 30]),
        "RGB": (Image.new("RGB", (8, 6), (1, 2, 3)), {}, [1, 2, 3]),
        "RGBA": (Image.new("RGBA", (8, 6), (200, 100, 50, 10)), {}, [200, 100, 50]),
        "CMYK": (Image.new("CMYK", (8, 6), (0, 255, 255, 0)), {"format": "TIFF"}, [255, 0, 0]),
        "1bit": (Image.new("1", (8, 6), 1), {}, [255, 255, 255]),
        # 16-bit: 32896 / 257 = 128; PIL's convert("RGB") would clip it to 255
        "I16": (Image.fromarray(np.full((6, 8), 32896, np.uint16)), {}, [128, 128, 128]),
    }
    suffix = {"CMYK": ".tif"}
    return {name: (_save(tmp_path, name + suffix.get(name, ".png"), img, **kw), np.array(px, np.uint8))
            for name, (img, kw, px) in cases.items()}


def test_every_mode_becomes_rgb_uint8(tmp_path):
    for name, (path, pixel) in _modes(tmp_path).items():
        image = read_rgb(str(path))
        assert image.dtype == np.uint8 and image.shape == (6, 8, 3), name
        np.testing.assert_array_equal(image[0, 0], pixel, err_msg=name)


def test_16bit_keeps_its_range():
    ramp = Image.fromarray(np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8))
    assert ramp.mode.startswith("I")
    from detseg.data.datasets.base import _to_rgb

    out = _to_rgb(ramp)[..., 0]
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 50  # scaled, not clipped


# ------------------------------------------------------------------ EXIF orientations 2..8
# What each orientation does to the stored image to display it (PIL's exif_transpose).
_DISPLAY = {1: lambda a: a, 2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud,
            5: lambda a: np.rot90(np.fliplr(a), 1), 6: lambda a: np.rot90(a, -1),
            7: lambda a: np.rot90(np.fliplr(a), -1), 8: lambda a: np.rot90(a, 1)}


def _exif_case(tmp_path: Path, orientation: int) -> tuple[Path, np.ndarray]:
    """A stored 20x30 PNG with a bright block; returns the file and the *displayed* image."""
    stored = np.zeros((20, 30, 3), np.uint8)
    stored[2:8, 3:12] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    return path, np.ascontiguousarray(_DISPLAY[orientation](stored))


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_boxes_line_up_with_the_displayed_image(tmp_path, orientation):
    path, displayed = _exif_case(tmp_path, orientation)
    ys, xs = np.nonzero(displayed[..., 0])
    h, w = displayed.shape[:2]
    box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    data = {"images": [{"id": 1, "file_name": path.name, "height": h, "width": w}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": box, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "block"}]}
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(data))
    sample = CocoDetection(ann_file, tmp_path)[0]  # sizes are compared; a stored-size json would be rejected
    x1, y1, x2, y2 = sample["boxes"][0].int().tolist()
    image = sample["image"].permute(1, 2, 0).numpy()
    assert image.shape[:2] == (h, w)
    assert (image[y1:y2, x1:x2] == 255).all() and image.sum() == 255 * 3 * (x2 - x1) * (y2 - y1)
    report = check_coco(ann_file, tmp_path)
    assert report.ok and "exif_orientation" in report.problems


def test_json_with_stored_size_of_rotated_image_is_a_size_mismatch(tmp_path):
    path, _ = _exif_case(tmp_path, 6)  # displayed 30 high, 20 wide
    data = {"images": [{"id": 1, "file_name": path.name, "height": 20, "width": 30}], "annotations": [],
            "categories": [{"id": 1, "name": "block"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    assert "size_mismatch" in check_coco(tmp_path / "ann.json", tmp_path).errors


def test_infer_tool_succeeds_on_every_mode(tmp_path, tiny_checkpoint, run_tool):
    ckpt, overrides = tiny_checkpoint
    inputs = [p for p, _ in _modes(tmp_path).values()] + [_exif_case(tmp_path, 6)[0]]
    code, out, err = run_tool("infer", CONFIG, "--checkpoint", ckpt, "--input", *inputs,
                              "--output-dir", tmp_path / "out", *overrides)
    assert code == 0, err
    assert f"{len(inputs)} images written" in out and "skipped" not in err
    assert len(json.loads((tmp_path / "out" / "predictions.json").read_text())) == len(inputs)

"""Issue 7 item 18: tools/infer.py over 1,000 images: all processed, one bad file skipped, memory flat."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from tests.reliability.conftest import CONFIG

NUM_IMAGES = 1000


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_infer_on_a_thousand_images_with_one_bad_file(tmp_path, tiny_checkpoint, run_tool, monkeypatch):
    from detseg.app.predictor import Predictor

    ckpt, overrides = tiny_checkpoint
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(NUM_IMAGES):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(inputs / f"img{i:04d}.png")
    (inputs / "img0500_bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rss, call = [], Predictor.__call__

    def measured(self, image):  # RSS after each image: growth would show a leak per image
        result = call(self, image)
        rss.append(_rss_mb())
        return result

    monkeypatch.setattr(Predictor, "__call__", measured)
    code, out, err = run_tool("infer", CONFIG, "--checkpoint", ckpt, "--input", inputs, "--output-dir",
                              tmp_path / "out", "data.min_size_test=32", "data.max_size_test=64", *overrides)
    assert code == 0, err
    assert f"{NUM_IMAGES} images written" in out and "1 skipped" in out and "img0500_bad.png" in err
    assert re.search(r"\(\d+(\.\d+)? images/s\)", out)
    assert len(json.loads((tmp_path / "out" / "predictions.json").read_text())) == NUM_IMAGES
    assert len(list((tmp_path / "out").glob("*.jpg"))) == NUM_IMAGES
    warm = np.median(rss[50:100])  # after allocator and thread pools settled
    assert max(rss[-100:]) - warm < 30, (warm, max(rss[-100:]))

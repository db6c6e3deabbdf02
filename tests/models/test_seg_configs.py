"""Every config under configs/fcn and configs/unet builds and predicts a label map for a tiny image on the CPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.structures import Batch

REPO = Path(__file__).resolve().parents[2]
FCN_CONFIGS = sorted((REPO / "configs" / "fcn").glob("*.yaml")) + sorted((REPO / "configs" / "unet").glob("*.yaml"))


def test_fcn_configs_exist():
    names = {p.name for p in FCN_CONFIGS}
    assert {"shapes_8s.yaml", "shapes_32s.yaml", "voc_vgg16_8s.yaml", "coco_r50.yaml"} <= names


@pytest.mark.parametrize("path", FCN_CONFIGS, ids=lambda p: p.name)
def test_fcn_config_builds_and_predicts(path):
    cfg = load_config(path, ["model.backbone.weights=null"])  # no network in tests
    assert cfg.model.arch in ("fcn", "unet") and cfg.data.task == "semantic"
    num_classes = cfg.model.num_classes or 3
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes).eval()
    images = torch.randint(0, 256, (1, 3, 64, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    batch = Batch(images=images, image_sizes=[(60, 75)], orig_sizes=[(90, 110)], image_ids=[0])
    with torch.no_grad():
        maps = model(batch, mode="predict")
    assert len(maps) == 1 and maps[0].shape == (90, 110) and maps[0].dtype == torch.int64
    assert 0 <= maps[0].min() and maps[0].max() <= num_classes

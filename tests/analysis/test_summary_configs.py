"""Every architecture's shapes config summarised whole in predict mode on a synthetic image."""
from pathlib import Path

import pytest
import torch

from detseg.analysis import summarize
from detseg.analysis.networks import build_config_model, reads_precomputed_proposals, synthetic_batch
from detseg.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["faster_rcnn", "mask_rcnn", "fast_rcnn", "sppnet", "rcnn", "ssd", "yolo", "fcn/shapes_8s"]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_models_are_summarised_whole(name):
    path = ROOT / "configs" / (name if "/" in name else f"{name}/shapes")
    cfg = load_config(path.with_suffix(".yaml"), [])
    torch.manual_seed(0)
    model = build_config_model(cfg)
    proposals = 8 if reads_precomputed_proposals(cfg.model) else None
    summary = summarize(model, synthetic_batch(96, 128, proposals))
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in summary.rows) == summary.total_params
    assert sum(r.flops for r in summary.rows) == summary.total_flops > 0
    assert summary.input_shape == [1, 3, 96, 128]
    assert summary.features and all(f.rf_stride == f.stride for f in summary.features)
    if cfg.model.arch == "rcnn":  # the backbone runs on each warped region, not on the image
        warp = cfg.model.rcnn.warp_size
        assert all(f.shape[0] == proposals and f.shape[-1] == -(-warp // f.stride) for f in summary.features)


def test_precomputed_proposal_models_get_random_boxes_inside_the_image():
    batch = synthetic_batch(60, 80, proposals=50)
    boxes = batch.proposals[0]
    assert boxes.shape == (50, 4) and (boxes[:, 2:] > boxes[:, :2]).all()
    assert (boxes[:, [0, 2]] <= 80).all() and (boxes[:, [1, 3]] <= 60).all() and (boxes >= 0).all()

"""A checkpoint written before the model attributes were renamed still loads, to the same weights."""
from __future__ import annotations

import torch

from detseg.app.model_loading import load_trained_model
from detseg.config import config_to_dict, load_config
from detseg.models.build import build_model
from detseg.models.compat import upgrade_state_dict
from detseg.utils.checkpoint import save_checkpoint

TINY = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64,64]",
        "model.num_classes=3", "model.class_names=[a,b,c]", "model.backbone.weights=null"]


def test_rpn_keys_of_an_older_checkpoint_load_as_the_proposal_generator(tmp_path):
    cfg = load_config("configs/faster_rcnn/shapes.yaml", TINY)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    current = model.state_dict()
    older = {key.replace("proposal_generator.", "rpn.", 1): value for key, value in current.items()}
    assert sum(key.startswith("rpn.") for key in older) > 0
    save_checkpoint(tmp_path / "old.pt", {"model": older, "config": config_to_dict(cfg), "iteration": 0})
    loaded, _ = load_trained_model(load_config("configs/faster_rcnn/shapes.yaml", TINY), tmp_path / "old.pt", "cpu")
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, current[key]), key


def test_upgrade_renames_only_the_old_prefixes():
    state = {"rpn.head.conv.weight": 1, "roi_heads.pooler.backbone.body.conv1.weight": 2, "roi_heads.box.w": 3}
    assert upgrade_state_dict(state) == {"proposal_generator.head.conv.weight": 1, "backbone.body.conv1.weight": 2,
                                         "roi_heads.box.w": 3}

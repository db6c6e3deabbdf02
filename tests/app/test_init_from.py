"""detseg train --init-from: a new run's model starts from another run's weights, across class counts."""
from __future__ import annotations

import pytest
import torch

from detseg.app.model_loading import build_model_for, init_from
from detseg.app.training import run_training
from detseg.config import config_to_dict, load_config
from detseg.utils.checkpoint import save_checkpoint

TINY = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64,64]",
        "model.backbone.weights=null"]
PREDICTOR = ["roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias",
             "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias"]


def _model(num_classes: int, seed: int):
    cfg = load_config("configs/faster_rcnn/shapes.yaml", [*TINY, f"model.num_classes={num_classes}"])
    torch.manual_seed(seed)
    return build_model_for(cfg), cfg


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A 3-class run folder with its last.pt."""
    run = tmp_path_factory.mktemp("three_classes")
    model, cfg = _model(3, seed=0)
    save_checkpoint(run / "last.pt", {"model": model.state_dict(), "iteration": 7, "config": config_to_dict(cfg)})
    return run, model.state_dict()


def test_a_five_class_model_takes_everything_but_the_class_layers(source_run):
    run, source = source_run
    model, _ = _model(5, seed=1)
    built = {k: v.clone() for k, v in model.state_dict().items()}
    line = init_from(model, run)
    weights = model.state_dict()
    for key, value in weights.items():
        if key in PREDICTOR:  # another shape: kept as built, of the new shape
            assert torch.equal(value, built[key]) and value.shape[0] != source[key].shape[0], key
        else:  # backbone, neck, RPN, box head: the source run's
            assert torch.equal(value, source[key]), key
    assert weights["roi_heads.box_predictor.cls_score.weight"].shape[0] == 6  # 5 classes + background
    assert weights["roi_heads.box_predictor.bbox_pred.weight"].shape[0] == 24
    assert "\n" not in line
    assert line == (f"--init-from {run / 'last.pt'}: {len(weights) - 4} of {len(weights)} tensors taken; kept as "
                    f"built (another shape): roi_heads.box_predictor.cls_score.weight [4, 64] -> [6, 64], "
                    f"roi_heads.box_predictor.cls_score.bias [4] -> [6], roi_heads.box_predictor.bbox_pred.weight "
                    f"[16, 64] -> [24, 64], roi_heads.box_predictor.bbox_pred.bias [16] -> [24]")


def test_keys_missing_on_either_side_are_listed(tmp_path, source_run):
    _, source = source_run
    partial = {k: v for k, v in source.items() if not k.startswith("proposal_generator.")}
    partial["head.extra.weight"] = torch.zeros(2)
    save_checkpoint(tmp_path / "partial.pt", {"model": partial, "iteration": 3})
    model, _ = _model(3, seed=1)
    line = init_from(model, tmp_path / "partial.pt")
    missing = [k for k in source if k.startswith("proposal_generator.")]
    assert f"not in the checkpoint (kept as built): {missing[0]}" in line
    assert line.endswith("; not in this model (left out): head.extra.weight")
    assert "another shape" not in line


def test_a_missing_source_is_one_line_before_any_work(tmp_path):
    cfg = load_config("configs/faster_rcnn/shapes.yaml", [*TINY, f"train.output_dir={tmp_path / 'run'}"])
    with pytest.raises(FileNotFoundError, match=r"^--init-from .*empty: the folder holds no last.pt$"):
        (tmp_path / "empty").mkdir()
        run_training(cfg, init_from_run=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="give one of them"):
        run_training(cfg, resume=True, init_from_run=str(tmp_path / "empty"))
    assert not (tmp_path / "run").exists()

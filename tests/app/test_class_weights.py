"""solver.class_weights: auto: inverse-frequency weights from the training set's counts, said in one line and
stored in the config (solver.class_weights_values) the model is built from."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from detseg.app.class_weights import imbalance_ratio, inverse_frequency_weights, settle_class_weights
from detseg.app.model_loading import build_model_for
from detseg.config import Config, config_to_dict, load_config


@pytest.mark.parametrize("counts, expected", [
    ([10, 10, 10], [1.0, 1.0, 1.0]),
    # 1/count = 0.01, 0.1, 1 (mean 0.37) -> 0.027, 0.270, 2.703; the first clipped up to 0.25
    ([100, 10, 1], [0.25, 0.1 / 0.37, 1.0 / 0.37]),
    # 1/count = 0.001 (x7), 1 (mean 0.125875) -> 0.0079 (clipped to 0.25) and 7.94 (clipped to 4)
    ([1000] * 7 + [1], [0.25] * 7 + [4.0]),
    # an absent class counts as one box: 1/count = 0.02, 1, 0.02 (mean 0.3467) -> 0.058 (0.25), 2.885, 0.058 (0.25)
    ([50, 0, 50], [0.25, 1.0 / (1.04 / 3), 0.25]),
])
def test_inverse_frequency_normalised_to_mean_one_and_clipped(counts, expected):
    assert inverse_frequency_weights(counts) == pytest.approx(expected)


def test_imbalance_ratio_is_most_over_least_frequent():
    assert imbalance_ratio([100, 10, 1]) == 100.0 and imbalance_ratio([20, 0, 5]) == 20.0


def _dataset(labels: list[int], crowd_label: int = 0):
    """A COCO-like training set: one box per label (category ids 11, 12, 13) and one crowd box left out."""
    anns = {i: {"category_id": 11 + k, "bbox": [0, 0, 4, 4]} for i, k in enumerate(labels)}
    anns[len(anns)] = {"category_id": 11 + crowd_label, "bbox": [0, 0, 4, 4], "iscrowd": 1}
    return SimpleNamespace(coco=SimpleNamespace(anns=anns, imgs={1: {}}), category_ids=[11, 12, 13],
                           class_names=["rbc", "wbc", "platelet"])


def _cfg(arch: str = "faster_rcnn", weighting: str = "auto") -> Config:
    cfg = Config()
    cfg.model.arch, cfg.model.num_classes, cfg.model.class_names = arch, 3, ["rbc", "wbc", "platelet"]
    cfg.solver.class_weights = weighting
    return cfg


def test_auto_fills_the_values_and_says_them_in_one_line():
    cfg = _cfg()
    line = settle_class_weights(cfg, _dataset([0] * 100 + [1] * 10 + [2] * 1))
    assert cfg.solver.class_weights_values == [0.25, 0.2703, 2.7027]
    assert line == ("class weights (solver.class_weights=auto, from 111 training boxes; imbalance 100.0:1): "
                    "rbc 0.25 (100), wbc 0.27 (10), platelet 2.70 (1)")
    assert config_to_dict(cfg)["solver"]["class_weights_values"] == [0.25, 0.2703, 2.7027]  # into config.yaml


def test_none_leaves_the_losses_unweighted_and_semantic_says_it_is_not_weighted():
    cfg = _cfg(weighting="none")
    cfg.solver.class_weights_values = [1.0, 2.0, 3.0]  # e.g. a copied config.yaml: not used under "none"
    assert settle_class_weights(cfg, _dataset([0, 1, 2])) is None and cfg.solver.class_weights_values is None
    cfg = _cfg(arch="fcn")
    cfg.data.task = "semantic"
    line = settle_class_weights(cfg, _dataset([0, 1, 2]))
    assert cfg.solver.class_weights_values is None and "\n" not in line
    assert line.startswith("solver.class_weights=auto: model.arch 'fcn' (semantic) is not weighted")


def test_a_label_space_of_another_size_is_one_line():
    cfg = _cfg()
    cfg.model.num_classes = 4
    with pytest.raises(ValueError, match=r"^solver.class_weights=auto: the training set has 3 classes, "
                                         r"model.num_classes is 4$"):
        settle_class_weights(cfg, _dataset([0, 1, 2]))


def test_the_model_is_built_with_the_stored_values(tmp_path):
    overrides = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64,64]",
                 "model.backbone.weights=null", "model.num_classes=3", "solver.class_weights=auto",
                 "solver.class_weights_values=[0.5, 2.0, 1.0]"]
    model = build_model_for(load_config("configs/faster_rcnn/shapes.yaml", overrides))
    assert torch.equal(model.roi_heads.cls_loss_weight, torch.tensor([1.0, 0.5, 2.0, 1.0]))
    assert "roi_heads.cls_loss_weight" not in model.state_dict()  # a loss setting: checkpoints stay as they were
    unweighted = build_model_for(load_config("configs/faster_rcnn/shapes.yaml", overrides[:5]))
    assert unweighted.roi_heads.cls_loss_weight is None


def test_a_training_run_settles_the_weights_from_its_data(tmp_path, shapes_paths):
    from detseg.app.training import prepare_data
    from detseg.reports.labels import label_statistics

    cfg = load_config("configs/faster_rcnn/shapes.yaml", [
        f"data.train.ann_file={shapes_paths['train_json']}", f"data.train.img_dir={shapes_paths['train_dir']}",
        "data.val.ann_file=", "data.val.img_dir=", "solver.class_weights=auto", "data.num_workers=0"])
    said = []
    data = prepare_data(cfg, said.append)
    counts = label_statistics(data.train)["counts"]
    assert cfg.solver.class_weights_values == [round(w, 4) for w in inverse_frequency_weights(counts)]
    assert len(cfg.solver.class_weights_values) == cfg.model.num_classes == len(counts)
    assert [line for line in said if line.startswith("class weights (solver.class_weights=auto, from "
                                                     f"{sum(counts)} training boxes")]

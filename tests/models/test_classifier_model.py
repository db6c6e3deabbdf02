"""The classifier meta-architecture: configs build, probabilities, padding-free pooling, and a tiny training."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detseg.config import load_config
from detseg.data.build import build_dataset
from detseg.data.datasets.shape_crops import generate_shape_crops
from detseg.engine.trainer import Trainer
from detseg.models.build import build_model
from detseg.models.meta_arch.classifier import mean_inside_images
from detseg.app.pipeline import build_model_for, evaluate, train_loader_factory
from detseg.structures import Batch

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "classification").glob("*.yaml"))
SMALL = ["model.backbone.width=0.25"]


def _batch(images: list[torch.Tensor], labels: list[int] | None = None) -> Batch:
    h, w = max(i.shape[1] for i in images), max(i.shape[2] for i in images)
    padded = torch.zeros(len(images), 3, h, w, dtype=torch.uint8)
    for dst, src in zip(padded, images):
        dst[:, : src.shape[1], : src.shape[2]] = src
    sizes = [tuple(i.shape[1:]) for i in images]
    return Batch(images=padded, image_sizes=sizes, orig_sizes=sizes, image_ids=list(range(len(images))),
                 class_labels=torch.tensor(labels) if labels is not None else None)


def _random_image(h: int, w: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_configs_folder_has_the_classification_recipes():
    assert {p.name for p in CONFIGS} >= {"shape_crops_resnet18.yaml", "imagenet_resnet50.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_classification_configs_build_and_predict_probabilities(path):
    cfg = load_config(path, ["model.backbone.weights=null"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 4).eval()
    spec = model.backbone.output_spec()
    deepest = max(spec, key=lambda name: spec[name].stride)  # s32 for the ResNets, LeNet-5's F6 is s4
    assert model.in_feature == deepest and model.fc.out_features == 4
    with torch.no_grad():
        probs = model(_batch([_random_image(64, 64, 0), _random_image(64, 64, 1)]), mode="predict")
    assert probs.shape == (2, 4)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_pooling_leaves_out_the_cells_of_the_padding():
    # a [2, 1, 3, 4] map of a batch padded to 96 x 128 (stride 32): image 0 is 64 x 64 (cells 2 x 2),
    # image 1 is 96 x 100 (cells 3 x 4, the last column partly inside counts)
    features = torch.arange(24, dtype=torch.float32).view(2, 1, 3, 4)
    pooled = mean_inside_images(features, [(64, 64), (96, 100)], (96, 128))
    assert pooled.shape == (2, 1)
    assert pooled[0, 0] == (0 + 1 + 4 + 5) / 4
    assert pooled[1, 0] == features[1].mean()


def test_loss_needs_class_labels_and_both_mode_agrees():
    cfg = load_config(CONFIGS[-1], SMALL)
    torch.manual_seed(0)
    model = build_model(cfg.model, 3).eval()
    batch = _batch([_random_image(32, 32, 0), _random_image(32, 32, 1)], labels=[0, 2])
    with torch.no_grad():
        losses, probs = model(batch, mode="both")
        expected = torch.nn.functional.cross_entropy(model.logits(batch), batch.class_labels)
    torch.testing.assert_close(losses["loss_cls_ce"], expected)
    torch.testing.assert_close(probs, model(batch, mode="predict"))
    with pytest.raises(ValueError, match="needs class labels"):
        model(_batch([_random_image(32, 32, 0)]), mode="loss")


def test_classifier_and_classification_data_go_together():
    cfg = load_config(CONFIGS[-1], [*SMALL, "model.num_classes=3", "model.arch=faster_rcnn"])
    with pytest.raises(ValueError, match="model.arch 'classifier' goes with data.task 'classification'"):
        build_model_for(cfg)


def test_classifier_refuses_a_neck():
    cfg = load_config(CONFIGS[-1], ["model.neck.name=fpn"])
    with pytest.raises(ValueError, match="model.neck.name to 'none'"):
        build_model(cfg.model, 3)


def test_classifier_trains_on_tiny_crops_and_its_loss_drops(tmp_path):
    generate_shape_crops(tmp_path / "crops", num_train=5, num_val=0, seed=0, crop_size=32, workers=1)  # 15 crops
    cfg = load_config(CONFIGS[-1], [
        *SMALL, f"data.train.root={tmp_path}/crops/train", f"data.val.root={tmp_path}/crops/train",
        "data.fixed_size=[32, 32]", "data.crop_scale=[1.0, 1.0]", "data.flip_prob=0.0", "data.batch_size=8",
        "data.num_workers=0", "model.classifier.dropout=0.0", "train.max_minutes=null", "train.max_iters=40",
        "train.log_period=1", "train.checkpoint_period=0", "train.device=cpu", "solver.warmup_iters=0",
        "solver.lr=0.003", f"train.output_dir={tmp_path}/run", "test.batch_size=8",
    ])
    train_set, val_set = build_dataset(cfg.data, "train", True), build_dataset(cfg.data, "val", False)
    cfg.model.num_classes, cfg.model.class_names = len(train_set.category_ids), list(train_set.class_names)
    torch.manual_seed(0)
    model = build_model_for(cfg, train_set)
    metrics = Trainer(cfg, model, train_loader_factory(cfg, train_set),
                      lambda m: evaluate(m, val_set, cfg, torch.device("cpu"), tmp_path / "eval")).train()
    losses = [r["loss_cls_ce"] for r in map(json.loads, (tmp_path / "run/metrics.jsonl").read_text().splitlines())
              if r["type"] == "train"]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    block = json.loads((tmp_path / "eval/metrics.json").read_text())["classification"]
    assert block == metrics["classification"] and block["num_images"] == len(val_set)
    assert block["top1"] >= 50.0  # the training images themselves, memorised

"""Every YOLO and SSD config builds and predicts; the shapes configs train, predict and agree in "both" mode."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from detseg.app.auto_sizes import resolve_auto_sizes
from detseg.config import load_config
from detseg.models.build import build_model
from detseg.structures import Batch, Instances

REPO = Path(__file__).resolve().parents[2]
# the torchvision-parity configs (coco_ssd*) are built and run by tests/models/test_ssd_parity.py
CONFIGS = sorted([*(REPO / "configs" / "yolo").glob("*.yaml"), *(REPO / "configs" / "ssd").glob("*.yaml")])
CONFIGS = [p for p in CONFIGS if not p.name.startswith("coco_ssd")]
SHAPES = {"yolo": REPO / "configs/yolo/shapes.yaml", "ssd": REPO / "configs/ssd/shapes.yaml"}
LOSS_KEYS = {"yolo": {"loss_yolo_xy", "loss_yolo_wh", "loss_yolo_obj", "loss_yolo_noobj", "loss_yolo_cls"},
             "ssd": {"loss_ssd_cls", "loss_ssd_box"}}
NUM_CLASSES = 3
BCCD_DATA = ["data.train.root=data/bccd", "data.train.split=trainval", "data.val.root=data/bccd",
             "data.val.split=test"]


def _batch(image_sizes, orig_sizes=None, boxes=None, labels=None, iscrowd=None, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    h, w = max(s[0] for s in image_sizes), max(s[1] for s in image_sizes)
    images = torch.zeros(len(image_sizes), 3, h, w, dtype=torch.uint8)
    for i, (ih, iw) in enumerate(image_sizes):
        images[i, :, :ih, :iw] = torch.randint(0, 256, (3, ih, iw), generator=g, dtype=torch.uint8)
    boxes = boxes if boxes is not None else [torch.zeros(0, 4)] * len(image_sizes)
    labels = labels if labels is not None else [torch.zeros(len(b), dtype=torch.int64) for b in boxes]
    iscrowd = iscrowd if iscrowd is not None else [torch.zeros(len(b), dtype=torch.bool) for b in boxes]
    return Batch(images=images, image_sizes=list(image_sizes), orig_sizes=list(orig_sizes or image_sizes),
                 image_ids=list(range(len(image_sizes))), boxes=boxes, labels=labels, iscrowd=iscrowd)


def _assert_instances(pred: Instances, hw: tuple[int, int], num_classes: int) -> None:
    assert isinstance(pred, Instances) and len(pred) > 0
    assert pred.boxes.shape == (len(pred), 4) and pred.boxes.dtype == torch.float32
    assert pred.labels.dtype == torch.int64 and torch.all((pred.labels >= 0) & (pred.labels < num_classes))
    assert torch.all(pred.scores[:-1] >= pred.scores[1:])
    assert torch.all(pred.boxes >= 0)
    assert torch.all(pred.boxes[:, 0::2] <= hw[1]) and torch.all(pred.boxes[:, 1::2] <= hw[0])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_one_stage_config_builds_and_predicts(path):
    # the custom configs take only the data: BCCD (shipped), from which their "auto" sizes are derived
    data = BCCD_DATA if "format: auto" in path.read_text() else []
    cfg = load_config(path, ["model.backbone.weights=null", *data])
    resolve_auto_sizes(cfg)
    num_classes = cfg.model.num_classes or NUM_CLASSES
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes).eval()
    model.head.score_thresh = 0.0
    # SSD's extra layers need the input size they were designed for; YOLO pools any map to its grid
    hw = tuple(cfg.data.fixed_size) if cfg.model.arch == "ssd" else (64, 64)
    with torch.no_grad():
        preds = model(_batch([hw]), mode="predict")
    _assert_instances(preds[0], hw, num_classes)


@pytest.fixture(scope="module", params=["yolo", "ssd"])
def shapes_model(request):
    torch.manual_seed(0)
    cfg = load_config(SHAPES[request.param], ["model.backbone.weights=null"])
    return request.param, build_model(cfg.model, NUM_CLASSES)


def _train_batch(**kwargs) -> Batch:
    return _batch([(128, 128), (128, 128)],
                  boxes=[torch.tensor([[10.0, 10.0, 60.0, 50.0], [70.0, 20.0, 120.0, 90.0]]),
                         torch.tensor([[5.0, 8.0, 40.0, 70.0]])],
                  labels=[torch.tensor([0, 2]), torch.tensor([1])], **kwargs)


def test_loss_is_finite_and_reaches_the_backbone(shapes_model):
    arch, model = shapes_model
    model.train()
    model.zero_grad()
    losses = model(_train_batch(), mode="loss")
    assert set(losses) == LOSS_KEYS[arch]
    assert all(v.dim() == 0 and math.isfinite(v.item()) and v.item() >= 0 for v in losses.values())
    sum(losses.values()).backward()
    grad = model.backbone.conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    model.zero_grad()


def test_images_without_objects_or_with_crowd_only_train(shapes_model):
    arch, model = shapes_model
    model.train()
    crowd = _batch([(128, 128)], boxes=[torch.tensor([[10.0, 10.0, 60.0, 50.0]])], labels=[torch.tensor([1])],
                   iscrowd=[torch.tensor([True])])
    for batch in (_batch([(128, 128), (128, 128)]), crowd):
        losses = model(batch, mode="loss")
        assert all(math.isfinite(v.item()) for v in losses.values())
        box_terms = [v for k, v in losses.items() if k.endswith(("_box", "_xy", "_wh", "_obj", "_cls"))
                     and not k.startswith("loss_ssd_cls")]
        assert all(v.item() == 0.0 for v in box_terms)  # no object: no box, objectness or class target


def test_predictions_are_scaled_to_the_original_image(shapes_model):
    _, model = shapes_model
    model.eval()
    model.head.score_thresh = 0.0
    sizes, orig = [(128, 128), (128, 128)], [(256, 128), (64, 192)]
    with torch.no_grad():
        same = model(_batch(sizes), mode="predict")
        scaled = model(_batch(sizes, orig_sizes=orig), mode="predict")
    for pred, ref, (h, w) in zip(scaled, same, orig):
        _assert_instances(pred, (h, w), NUM_CLASSES)
        assert torch.equal(pred.scores, ref.scores) and torch.equal(pred.labels, ref.labels)
        torch.testing.assert_close(pred.boxes, ref.boxes * torch.tensor([w / 128, h / 128] * 2))


def test_both_mode_equals_loss_and_predict(shapes_model):
    _, model = shapes_model
    model.eval()
    model.head.score_thresh = 0.0
    batch = _train_batch(orig_sizes=[(64, 64), (200, 160)])
    with torch.no_grad():
        losses, preds = model(batch, mode="both")
        expected_losses = model(batch, mode="loss")
        expected = model(batch, mode="predict")
    assert set(losses) == set(expected_losses)
    for key in losses:
        torch.testing.assert_close(losses[key], expected_losses[key])
    for got, exp in zip(preds, expected):
        assert torch.equal(got.boxes, exp.boxes) and torch.equal(got.scores, exp.scores)


def test_test_score_thresh_override_reaches_the_dense_head(shapes_model):
    from detseg.app.pipeline import apply_test_overrides

    _, model = shapes_model
    cfg = load_config(SHAPES["ssd"], ["test.score_thresh=0.37"])
    apply_test_overrides(model, cfg)
    assert model.head.score_thresh == 0.37


def test_missing_feature_names_the_key():
    with pytest.raises(ValueError, match="model.ssd.in_features"):
        build_model(load_config(SHAPES["ssd"], ["model.ssd.in_features=[s8, s1024]"]).model, NUM_CLASSES)
    with pytest.raises(ValueError, match="model.yolo.in_feature"):
        build_model(load_config(SHAPES["yolo"], ["model.yolo.in_feature=s64", "model.backbone.weights=null"]).model, NUM_CLASSES)

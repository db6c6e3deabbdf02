"""Every new backbone under every head family: Faster R-CNN (FPN and one map), SSD, YOLO, FCN and the
classifier build from the shipped CPU configs with only model.backbone.* changed, and run in loss and
predict mode on tiny 64 x 64 images. Heads read the backbones' FeatureSpecs, never their names."""
from __future__ import annotations

import math

import pytest
import torch

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.structures import Batch, Instances

NUM_CLASSES = 3
SIZE = 64
# (name, width): small widths where the definition has one; DenseNet-161/201 and SE-ResNeXt are built in
# tests/models/test_backbones_course.py (same code paths as densenet121 / se_resnet50, only slower)
BACKBONES = [("googlenet", 1.0), ("densenet121", 0.25), ("mnasnet0_5", 1.0), ("se_resnet50", 0.25),
             ("timm/resnet18d", 1.0), ("timm/efficientnet_b0", 1.0)]
SINGLE_MAP = ["model.neck.name=none", "model.backbone.out_features=[s16]", "model.rpn.in_features=[s16]",
              "model.rpn.anchor_sizes=[[16, 32, 64]]", "model.roi.in_features=[s16]"]
FAMILIES = {
    "faster_rcnn_fpn": ("configs/faster_rcnn/shapes.yaml", []),
    "faster_rcnn_single_map": ("configs/faster_rcnn/shapes.yaml", SINGLE_MAP),
    "ssd": ("configs/ssd/shapes.yaml", []),
    "yolo": ("configs/yolo/shapes.yaml", []),
    "fcn": ("configs/fcn/shapes_8s.yaml", []),
    "classifier": ("configs/classification/shape_crops_resnet18.yaml", []),
}


def _batch(arch: str) -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, SIZE, SIZE), dtype=torch.uint8, generator=g)
    batch = Batch(images=images, image_sizes=[(SIZE, SIZE)] * 2, orig_sizes=[(SIZE, SIZE)] * 2, image_ids=[0, 1])
    if arch == "fcn":
        batch.sem_seg = torch.randint(0, NUM_CLASSES + 1, (2, SIZE, SIZE), generator=g)
    elif arch == "classifier":
        batch.class_labels = torch.tensor([0, 2])
    else:
        batch.boxes = [torch.tensor([[4.0, 6.0, 40.0, 30.0], [20.0, 24.0, 60.0, 62.0]]), torch.tensor([[8.0, 8.0, 50.0, 44.0]])]
        batch.labels = [torch.tensor([0, 2]), torch.tensor([1])]
        batch.iscrowd = [torch.zeros(2, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)]
    return batch


def _model(family: str, name: str, width: float):
    path, extra = FAMILIES[family]
    cfg = load_config(path, [f"model.backbone.name={name}", f"model.backbone.width={width}",
                             "model.backbone.weights=null", *extra])
    torch.manual_seed(0)
    return cfg.model.arch, build_model(cfg.model, NUM_CLASSES)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("name, width", BACKBONES, ids=[name for name, _ in BACKBONES])
def test_backbone_under_head_family_trains_and_predicts(name, width, family):
    if name.startswith("timm/"):
        pytest.importorskip("timm")
    _assert_trains_and_predicts(*_model(family, name, width))


def _assert_trains_and_predicts(arch: str, model) -> None:
    batch = _batch(arch)
    losses = model.train()(batch, mode="loss")
    assert losses and all(v.dim() == 0 and math.isfinite(v.item()) for v in losses.values()), losses
    with torch.no_grad():
        preds = model.eval()(batch, mode="predict")
    if arch == "classifier":
        assert preds.shape == (2, NUM_CLASSES)
    elif arch == "fcn":
        assert [p.shape for p in preds] == [(SIZE, SIZE)] * 2
    else:
        assert len(preds) == 2 and all(isinstance(p, Instances) for p in preds)


# A ViT gives one stride-16 map (tests/models/test_backbones_timm.py): each family reads that one map, SSD
# with two extra layers above it; an FPN over a single map is not offered
VIT_FAMILIES = {
    "faster_rcnn_single_map": [],
    "ssd": ["model.backbone.out_features=[s16]", "model.neck.extra_channels=[128, 128]",
            "model.neck.extra_strides=[2, 2]", "model.ssd.in_features=[s16, s32, s64]",
            "model.ssd.aspect_ratios=[[2], [2, 3], [2]]"],
    "yolo": [],
    "fcn": ["model.fcn.variant=32s", "model.fcn.in_features=[s16]"],  # one map, upsampled by its stride
    "classifier": [],
}


@pytest.mark.parametrize("family", list(VIT_FAMILIES))
def test_vision_transformer_under_head_family_trains_and_predicts(family):
    pytest.importorskip("timm")
    path, extra = FAMILIES[family]
    cfg = load_config(path, ["model.backbone.name=timm/vit_tiny_patch16_224", "model.backbone.width=1.0",
                             "model.backbone.weights=null", *extra, *VIT_FAMILIES[family]])
    torch.manual_seed(0)
    _assert_trains_and_predicts(cfg.model.arch, build_model(cfg.model, NUM_CLASSES))


def test_lenet5_classifies_32_pixel_images():
    cfg = load_config(FAMILIES["classifier"][0], ["model.backbone.name=lenet5", "model.backbone.width=1.0",
                                                  "model.classifier.dropout=0.0"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 10)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    batch = Batch(images=images, image_sizes=[(32, 32)] * 2, orig_sizes=[(32, 32)] * 2, image_ids=[0, 1],
                  class_labels=torch.tensor([3, 7]))
    losses = model.train()(batch, mode="loss")
    assert all(math.isfinite(v.item()) for v in losses.values())
    with torch.no_grad():
        probs = model.eval()(batch, mode="predict")
    assert probs.shape == (2, 10)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))
    assert sum(p.numel() for p in model.parameters()) == 156 + 2_416 + 48_120 + 10_164 + 850

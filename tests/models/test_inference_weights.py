"""Inference keeps its cast and folded weights (detseg.models.layers.inference_weights) without changing a
single output, and makes them again whenever the weights change."""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.models.layers.inference_weights import (InferenceConv2d, InferenceLinear, keep_inference_weights,
                                                    made_at_each_call)
from detseg.structures import Batch

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "faster_rcnn" / "shapes.yaml"
TINY = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64, 64]",
        "model.rpn.pre_nms_topk_test=300", "model.rpn.post_nms_topk_test=200"]


def detector() -> nn.Module:
    torch.manual_seed(0)
    model = build_model(load_config(CONFIG, TINY).model, 3).eval()
    model.roi_heads.score_thresh = 0.0  # a random network: keep every detection
    g = torch.Generator().manual_seed(1)
    for module in model.modules():  # non-trivial norm statistics, so a stale fold would show
        if hasattr(module, "running_var") and module.running_var is not None:
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g) * 0.1)
    return model


def batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1, 3, 160, 192), generator=g, dtype=torch.uint8)
    return Batch(images=images, image_sizes=[(160, 192)], orig_sizes=[(160, 192)], image_ids=[0],
                 boxes=[torch.zeros(0, 4)], labels=[torch.zeros(0, dtype=torch.int64)],
                 iscrowd=[torch.zeros(0, dtype=torch.bool)])


def predict(model, amp: bool, plain: bool = False):
    """``plain``: weights made at each call (autocast casts them, the norms fold), nothing kept."""
    with made_at_each_call() if plain else contextlib.nullcontext():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            (instances,) = model(batch(), mode="predict")
    return instances.boxes.float(), instances.scores.float(), instances.labels


def assert_same(a, b):
    assert len(a[0]) > 0
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_kept_weights_give_the_outputs_of_the_plain_path(amp):
    model = detector()
    plain = predict(model, amp, plain=True)
    assert not any("_inference_weights" in m.__dict__ for m in model.modules())
    first, second = predict(model, amp), predict(model, amp)  # makes the kept weights, then uses them
    assert_same(first, plain)
    assert_same(second, plain)
    fc = model.roi_heads.box_head.fcs[0]
    assert isinstance(fc, InferenceLinear)
    (key, (weight, _)), = fc.__dict__["_inference_weights"].values()
    assert weight.dtype == (torch.bfloat16 if amp else torch.float32)
    model.train()  # training drops them (a run that evaluates every epoch holds no stale copy)
    assert not any("_inference_weights" in m.__dict__ for m in model.modules())


def test_changed_weights_are_made_again():
    model, reference = detector(), detector()
    predict(model, amp=True)
    with torch.no_grad():  # an optimizer step changes parameters in place; a state dict loads in place
        for p in reference.parameters():
            p.mul_(1 + 0.1 * torch.randn_like(p))
        for m in reference.modules():
            if hasattr(m, "running_var") and m.running_var is not None:
                m.running_var.mul_(1.2)
    model.load_state_dict(reference.state_dict())
    assert_same(predict(model, amp=True), predict(reference, amp=True, plain=True))


def test_a_switch_of_precision_is_a_new_weight():
    model = detector()
    bf16 = predict(model, amp=True)
    fp32 = predict(model, amp=False)
    assert_same(fp32, predict(detector(), amp=False, plain=True))
    assert_same(predict(model, amp=True), bf16)


def test_only_the_class_changes():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    net(torch.randn(1, 3, 6, 6))
    before = copy.deepcopy(net.state_dict())
    keep_inference_weights(net)
    assert type(net[0]) is InferenceConv2d and isinstance(net[0], nn.Conv2d)
    assert type(net[3]) is InferenceLinear and isinstance(net[3], nn.Linear)
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())

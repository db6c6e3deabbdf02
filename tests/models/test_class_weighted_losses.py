"""solver.class_weights reaches each family's classification loss: the RoI box classifier is torch's weighted
cross-entropy (background 1), SSD scales each default box's cross-entropy by its target's weight, YOLO each
object cell's class term; without weights every loss is what it was."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.models.dense.ssd_loss import hard_negative_mask, match_default_boxes, ssd_losses
from detseg.models.dense.yolo_loss import encode_targets, yolo_losses
from detseg.models.layers.box_coder import BoxCoder
from detseg.structures import Batch

TINY = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64,64]",
        "model.backbone.weights=null"]


def _roi_heads(class_weights):
    cfg = load_config("configs/faster_rcnn/shapes.yaml", TINY)
    return build_model(cfg.model, 2, class_weights=class_weights).roi_heads


def _box_loss(heads, logits, classes):
    heads.forward = lambda features, rois, sizes: (logits, torch.zeros(len(logits), 12))  # the hand-made scores
    batch = Batch(images=torch.zeros(1, 3, 8, 8, dtype=torch.uint8), image_sizes=[(8, 8)], orig_sizes=[(8, 8)],
                  image_ids=[0], boxes=[torch.zeros(0, 4)], labels=[torch.zeros(0, dtype=torch.int64)],
                  iscrowd=[torch.zeros(0, dtype=torch.bool)])
    rois, targets = [torch.zeros(len(logits), 4)], torch.zeros(len(logits), 4)
    return heads.box_loss({}, rois, classes, targets, batch)["loss_roi_cls"]


def test_roi_classifier_loss_is_torchs_weighted_cross_entropy():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3], [-0.5, 0.2, 2.5], [1.0, 1.0, 0.0]])
    classes = torch.tensor([0, 1, 2, 2])  # background, class 0, class 1, class 1
    weighted = _box_loss(_roi_heads([0.5, 2.0]), logits, classes)
    weight = torch.tensor([1.0, 0.5, 2.0])
    assert torch.equal(weighted, F.cross_entropy(logits, classes, weight=weight))
    nll = -logits.log_softmax(1)[torch.arange(4), classes]  # torch's weighted mean, by hand
    assert weighted.item() == pytest.approx(((weight[classes] * nll).sum() / weight[classes].sum()).item())
    assert torch.equal(_box_loss(_roi_heads(None), logits, classes), F.cross_entropy(logits, classes))


def test_ssd_confidence_loss_scales_each_box_by_its_targets_weight():
    defaults = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30], [0, 20, 10, 30], [20, 0, 30, 10.0]])
    gt, gt_valid = torch.tensor([[[0, 0, 10, 10], [20, 20, 30, 30.0]]]), torch.ones(1, 2, dtype=torch.bool)
    labels = torch.tensor([[0, 1]])
    logits = torch.tensor([[[0.2, 1.0, -0.3], [0.5, 0.1, 0.9], [1.5, 0.2, 0.1], [0.3, 0.8, 0.2]]])
    deltas, coder = torch.zeros(1, 4, 4), BoxCoder((10.0, 10.0, 5.0, 5.0))
    weight = torch.tensor([1.0, 3.0, 0.5])
    loss = ssd_losses(logits, deltas, defaults, gt, gt_valid, labels, coder, 0.5, 1.0, weight)["loss_ssd_cls"]
    assert match_default_boxes(defaults, gt, gt_valid, 0.5).tolist() == [[0, 1, -1, -1]]
    classes = torch.tensor([[1, 2, 0, 0]])  # label k is class k + 1; unmatched boxes are background
    ce = F.cross_entropy(logits[0], classes[0], reduction="none")
    negative = hard_negative_mask(ce[None], classes > 0, 1.0)[0]
    expected = (ce[0] * 3.0 + ce[1] * 0.5 + ce[negative].sum()) / 2  # two positives, two mined negatives
    assert loss.item() == pytest.approx(expected.item())
    plain = ssd_losses(logits, deltas, defaults, gt, gt_valid, labels, coder, 0.5, 1.0)["loss_ssd_cls"]
    assert plain.item() == pytest.approx(((ce[0] + ce[1] + ce[negative].sum()) / 2).item())


def test_yolo_class_term_scales_each_object_cell_by_its_class_weight():
    gt = torch.tensor([[[0, 0, 10, 10], [40, 40, 60, 60.0]]])
    targets = encode_targets(gt, torch.ones(1, 2, dtype=torch.bool), torch.tensor([[0, 2]]), 2, (64, 64))
    grid = torch.linspace(-1, 1, 2 * 2 * 13).view(1, 2, 2, 13)  # B = 2 boxes (10 values), C = 3 classes
    weight = torch.tensor([2.0, 1.0, 0.25])
    loss = yolo_losses(grid, targets, 2, (64, 64), 5.0, 0.5, weight)["loss_yolo_cls"]
    probs = grid[..., 10:]
    first = (probs[0, 0, 0] - torch.tensor([1.0, 0, 0])).pow(2).sum()  # the cell of the class-0 box
    second = (probs[0, 1, 1] - torch.tensor([0, 0, 1.0])).pow(2).sum()  # the cell of the class-2 box
    assert loss.item() == pytest.approx((2.0 * first + 0.25 * second).item())
    plain = yolo_losses(grid, targets, 2, (64, 64), 5.0, 0.5)["loss_yolo_cls"]
    assert plain.item() == pytest.approx((first + second).item())


def test_builder_refuses_weights_it_cannot_place_in_one_line():
    cfg = load_config("configs/faster_rcnn/shapes.yaml", TINY)
    with pytest.raises(ValueError, match=r"^solver.class_weights_values has 3 values for 2 classes$"):
        build_model(cfg.model, 2, class_weights=[1.0, 1.0, 1.0])
    cfg.model.arch = "classifier"
    with pytest.raises(ValueError, match=r"^solver.class_weights weighs the detection losses; model.arch "
                                         r"'classifier' takes none$"):
        build_model(cfg.model, 2, class_weights=[1.0, 1.0])

"""A tiny Faster R-CNN end to end: loss / predict / both, coordinates, crowd and empty images, poolers."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from detseg.config import load_config
from detseg.models.build import build_model, build_pooler
from detseg.models.roi.poolers import RoIAlignPooler, RoIPoolPooler
from detseg.structures import Batch, Instances

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "faster_rcnn" / "shapes.yaml"
NUM_CLASSES = 3
LOSS_KEYS = {"loss_rpn_cls", "loss_rpn_box", "loss_roi_cls", "loss_roi_box"}
TINY = [
    "model.backbone.width=0.25",
    "model.neck.out_channels=32",
    "model.roi.head_fc_dims=[64, 64]",
    "model.rpn.pre_nms_topk_train=200",
    "model.rpn.post_nms_topk_train=64",
    "model.rpn.pre_nms_topk_test=200",
    "model.rpn.post_nms_topk_test=32",
    "model.roi.batch_size_per_image=32",
]
ROI = load_config(CONFIG, TINY).model.roi  # the settings the model is built with


def _build(*overrides: str):
    torch.manual_seed(0)
    cfg = load_config(CONFIG, [*TINY, *overrides])
    return build_model(cfg.model, NUM_CLASSES)


@pytest.fixture(scope="module")
def model():
    return _build()


def _batch(image_sizes, orig_sizes=None, boxes=None, labels=None, iscrowd=None, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    h = max(s[0] for s in image_sizes)
    w = max(s[1] for s in image_sizes)
    images = torch.zeros(len(image_sizes), 3, h, w, dtype=torch.uint8)
    for i, (ih, iw) in enumerate(image_sizes):
        images[i, :, :ih, :iw] = torch.randint(0, 256, (3, ih, iw), generator=g, dtype=torch.uint8)
    n = len(image_sizes)
    boxes = boxes if boxes is not None else [torch.zeros(0, 4)] * n
    labels = labels if labels is not None else [torch.zeros(len(b), dtype=torch.int64) for b in boxes]
    iscrowd = iscrowd if iscrowd is not None else [torch.zeros(len(b), dtype=torch.bool) for b in boxes]
    return Batch(
        images=images,
        image_sizes=list(image_sizes),
        orig_sizes=list(orig_sizes or image_sizes),
        image_ids=list(range(n)),
        boxes=boxes,
        labels=labels,
        iscrowd=iscrowd,
    )


def _train_batch(**kwargs) -> Batch:
    return _batch(
        [(96, 128), (80, 100)],
        boxes=[torch.tensor([[10.0, 10.0, 60.0, 50.0], [70.0, 20.0, 120.0, 90.0]]), torch.tensor([[5.0, 8.0, 40.0, 70.0]])],
        labels=[torch.tensor([0, 2]), torch.tensor([1])],
        **kwargs,
    )


def _assert_losses(losses: dict) -> None:
    assert set(losses) == LOSS_KEYS
    for key, value in losses.items():
        assert value.dim() == 0 and math.isfinite(value.item()), key
        assert value.item() >= 0, key


# ---------------------------------------------------------------- loss


def test_loss_mode_returns_four_finite_losses_and_gradients_reach_the_backbone(model):
    model.train()
    model.zero_grad()
    losses = model(_train_batch(), mode="loss")
    _assert_losses(losses)
    assert losses["loss_rpn_box"] > 0 and losses["loss_roi_cls"] > 0
    sum(losses.values()).backward()
    for name in ["backbone.conv1.weight", "backbone.layer4.1.conv2.weight", "neck.fpn.layer_blocks.0.0.weight",
                 "proposal_generator.head.cls_logits.weight", "proposal_generator.head.bbox_pred.weight",
                 "roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.bbox_pred.weight"]:
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    model.zero_grad()


def test_image_without_ground_truth_trains(model):
    model.train()
    batch = _batch([(64, 64), (64, 96)])
    losses = model(batch, mode="loss")
    _assert_losses(losses)
    # nothing to regress towards: both box losses are exactly zero, the classifiers still learn
    assert losses["loss_rpn_box"].item() == 0.0 and losses["loss_roi_box"].item() == 0.0
    assert losses["loss_rpn_cls"] > 0 and losses["loss_roi_cls"] > 0
    sum(losses.values()).backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    model.zero_grad()


def test_mixed_batch_with_one_empty_image_trains(model):
    model.train()
    batch = _batch(
        [(64, 64), (64, 64)],
        boxes=[torch.tensor([[8.0, 8.0, 40.0, 48.0]]), torch.zeros(0, 4)],
        labels=[torch.tensor([2]), torch.zeros(0, dtype=torch.int64)],
    )
    _assert_losses(model(batch, mode="loss"))


# ---------------------------------------------------------------- predict / both


def _predict(model, batch):
    model.eval()
    model.roi_heads.score_thresh = 0.0  # a random network: keep every detection
    try:
        with torch.no_grad():
            return model(batch, mode="predict")
    finally:
        model.roi_heads.score_thresh = ROI.score_thresh


def test_predict_returns_instances_in_original_image_coordinates(model):
    sizes = [(96, 128), (80, 100)]
    orig = [(192, 128), (40, 150)]  # per-axis factors differ: (2, 1) and (0.5, 1.5)
    same = _predict(model, _batch(sizes))
    scaled = _predict(model, _batch(sizes, orig_sizes=orig))
    assert len(scaled) == 2 and all(isinstance(p, Instances) for p in scaled)
    for pred, ref, (h, w), (ih, iw) in zip(scaled, same, orig, sizes):
        assert len(pred) > 0
        assert len(pred) <= model.roi_heads.detections_per_image == ROI.detections_per_image
        assert pred.boxes.shape == (len(pred), 4) and pred.boxes.dtype == torch.float32
        assert pred.scores.shape == pred.labels.shape == (len(pred),)
        assert pred.labels.dtype == torch.int64
        assert torch.all((pred.labels >= 0) & (pred.labels < NUM_CLASSES))
        assert torch.all((pred.scores >= 0) & (pred.scores <= 1))
        assert torch.all(pred.scores[:-1] >= pred.scores[1:])  # best first
        assert torch.all(pred.boxes[:, 2:] >= pred.boxes[:, :2])
        # inside the original image, not the network input
        assert torch.all(pred.boxes >= 0)
        assert torch.all(pred.boxes[:, 0::2] <= w) and torch.all(pred.boxes[:, 1::2] <= h)
        # the same detections, scaled by orig / input per axis
        assert torch.equal(pred.scores, ref.scores) and torch.equal(pred.labels, ref.labels)
        scale = torch.tensor([w / iw, h / ih, w / iw, h / ih])
        torch.testing.assert_close(pred.boxes, ref.boxes * scale)
    # image 0 is stretched 2x vertically: some box must reach below the 96 px network input
    assert scaled[0].boxes[:, 3].max() > 96


def test_predictions_of_a_padded_small_image_stay_inside_it(model):
    """Next to a larger image the small one is padded; its boxes are clipped to its own size."""
    preds = _predict(model, _batch([(48, 40), (96, 128)], seed=3))
    assert len(preds) == 2 and len(preds[0]) > 0
    assert torch.all(preds[0].boxes[:, 0::2] <= 40) and torch.all(preds[0].boxes[:, 1::2] <= 48)
    assert preds[1].boxes[:, 2].max() > 40  # the large image's boxes are not clipped to the small one


def test_both_mode_returns_losses_and_the_predictions_of_predict_mode(model):
    batch = _train_batch(orig_sizes=[(48, 64), (160, 200)])
    expected = _predict(model, batch)
    model.eval()
    model.roi_heads.score_thresh = 0.0
    try:
        with torch.no_grad():
            losses, preds = model(batch, mode="both")
    finally:
        model.roi_heads.score_thresh = ROI.score_thresh
    _assert_losses(losses)
    assert len(preds) == 2
    for got, exp in zip(preds, expected):
        assert torch.equal(got.boxes, exp.boxes)
        assert torch.equal(got.scores, exp.scores)
        assert torch.equal(got.labels, exp.labels)


def test_invalid_mode_names_the_modes(model):
    with pytest.raises(ValueError) as exc:
        model(_batch([(64, 64)]), mode="train")
    msg = str(exc.value)
    assert "'train'" in msg
    for mode in ("loss", "predict", "both"):
        assert mode in msg


# ---------------------------------------------------------------- crowd boxes


def test_crowd_only_image_has_no_positives(model):
    box = torch.tensor([[10.0, 10.0, 60.0, 50.0]])
    crowd = _batch([(64, 64)], boxes=[box], labels=[torch.tensor([1])], iscrowd=[torch.tensor([True])])
    normal = _batch([(64, 64)], boxes=[box], labels=[torch.tensor([1])])
    # proposals include the crowd box itself (IoU 1) and near copies of it
    proposals = [torch.cat([box, box + 1.0, box - 2.0, torch.tensor([[0.0, 0.0, 20.0, 20.0]])])]
    model.train()
    rois, classes, targets, _ = model.roi_heads.sample(proposals, crowd)
    assert len(classes) == sum(len(r) for r in rois) == 4  # the crowd box is not added as a proposal
    assert torch.all(classes == 0)
    _, normal_classes, _, _ = model.roi_heads.sample(proposals, normal)
    # label 1 -> class 2 for the three near copies (IoU >= 0.84) and the added gt; [0, 0, 20, 20] is background
    assert normal_classes.tolist().count(2) == 4 and normal_classes.tolist().count(0) == 1
    # the RPN sees no positive anchor either: no box regression loss at all
    losses = model(crowd, mode="loss")
    _assert_losses(losses)
    assert losses["loss_rpn_box"].item() == 0.0 and losses["loss_roi_box"].item() == 0.0
    assert model(normal, mode="loss")["loss_rpn_box"].item() > 0


def test_crowd_box_is_never_the_matched_ground_truth(model):
    crowd_box, real_box = torch.tensor([10.0, 10.0, 60.0, 50.0]), torch.tensor([70.0, 20.0, 120.0, 90.0])
    batch = _batch(
        [(96, 128)],
        boxes=[torch.stack([crowd_box, real_box])],
        labels=[torch.tensor([2, 0])],  # crowd would give class 3, the real box class 1
        iscrowd=[torch.tensor([True, False])],
    )
    proposals = [torch.stack([crowd_box, crowd_box + 1, real_box, real_box + 1])]
    rois, classes, targets, _ = model.roi_heads.sample(proposals, batch)
    rois = torch.cat(rois)
    assert set(classes.tolist()) == {0, 1}
    near_crowd = (rois - crowd_box).abs().max(dim=1).values <= 1
    assert near_crowd.sum() == 2 and torch.all(classes[near_crowd] == 0)


def test_sample_maps_labels_and_targets(model):
    """Proposals equal to the ground truth get class label + 1 and zero box targets."""
    gt = torch.tensor([[10.0, 10.0, 60.0, 50.0], [70.0, 20.0, 120.0, 90.0]])
    batch = _batch([(96, 128)], boxes=[gt], labels=[torch.tensor([2, 0])])
    far = torch.tensor([[0.0, 60.0, 8.0, 90.0]])
    rois, classes, targets, _ = model.roi_heads.sample([torch.cat([gt, far])], batch)
    rois = torch.cat(rois)
    for box, cls in zip(gt, (3, 1)):
        exact = (rois == box).all(dim=1)
        assert exact.sum() == 2  # the proposal and the added ground-truth copy
        assert torch.all(classes[exact] == cls)
        assert torch.equal(targets[exact], torch.zeros(2, 4))
    assert classes[(rois == far).all(dim=1)].tolist() == [0]


# ---------------------------------------------------------------- poolers


def test_roi_pool_config_builds_and_runs():
    model = _build("model.roi.pooler=roi_pool", "model.roi.in_features=[s16]")
    assert isinstance(model.roi_heads.pooler, RoIPoolPooler)
    assert model.roi_heads.pooler.scale == 1 / 16
    model.train()
    _assert_losses(model(_train_batch(), mode="loss"))
    preds = _predict(model, _batch([(64, 96)], orig_sizes=[(128, 192)]))
    assert len(preds) == 1 and len(preds[0]) > 0
    assert torch.all(preds[0].boxes[:, 0::2] <= 192) and torch.all(preds[0].boxes[:, 1::2] <= 128)


def test_pooler_selection_and_errors():
    cfg = load_config(CONFIG, TINY).model
    spec = _build().neck.output_spec()
    assert isinstance(build_pooler(cfg.roi, spec), RoIAlignPooler)
    cfg.roi.pooler = "roi_pool"
    with pytest.raises(ValueError, match="one feature map"):
        build_pooler(cfg.roi, spec)
    cfg.roi.pooler = "spp"
    with pytest.raises(ValueError, match="model.roi.pooler"):
        build_pooler(cfg.roi, spec)


def test_missing_feature_names_the_key():
    with pytest.raises(ValueError, match="model.roi.in_features"):
        _build("model.roi.in_features=[s128]")
    model = _build("model.rpn.anchor_sizes=[[32], [64]]")  # 2 size lists for 5 maps: caught at the first call
    with pytest.raises(ValueError, match="model.rpn.anchor_sizes"):
        _predict(model, _batch([(64, 64)]))


def test_neck_input_missing_from_backbone_names_the_key():
    # resnet18 gives s4..s32; asking the FPN for s64 must name the key, not fail with a bare KeyError
    with pytest.raises(ValueError, match="model.backbone.out_features.*s64"):
        _build("model.backbone.out_features=[s8, s16, s32, s64]")

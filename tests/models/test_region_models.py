"""Fast R-CNN, SPPnet and R-CNN on tiny models: losses, predictions, poolers, crop and warp."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.ops import roi_pool

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.models.layers.matching import IGNORE, match_boxes
from detseg.models.meta_arch.region_cnn import context_boxes, crop_and_warp
from detseg.models.roi.poolers import SPPPooler
from detseg.structures import Batch, Instances

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
NUM_CLASSES = 3
TINY = ["model.backbone.width=0.25", "model.neck.out_channels=16", "model.roi.head_fc_dims=[32]",
        "model.roi.batch_size_per_image=16", "model.rcnn.chunk_size=8"]


def _model(arch: str):
    torch.manual_seed(0)
    cfg = load_config(CONFIGS / arch / "shapes.yaml", TINY)
    if arch == "rcnn":
        cfg.model.rcnn.warp_size, cfg.model.rcnn.context_padding = 32, 4
    return build_model(cfg.model, NUM_CLASSES)


def _batch(with_proposals=True) -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8, generator=g)
    boxes = [torch.tensor([[4.0, 4, 30, 30], [40, 10, 70, 50]]), torch.zeros(0, 4)]
    props = [torch.tensor([[5.0, 5, 28, 31], [0, 0, 80, 64], [41, 12, 69, 47], [50, 50, 60, 60]]), torch.zeros(0, 4)]
    return Batch(images=images, image_sizes=[(64, 80), (60, 70)], orig_sizes=[(128, 160), (60, 70)], image_ids=[1, 2],
                 boxes=boxes, labels=[torch.tensor([0, 2]), torch.zeros(0, dtype=torch.int64)],
                 iscrowd=[torch.zeros(2, dtype=torch.bool), torch.zeros(0, dtype=torch.bool)],
                 proposals=props if with_proposals else None)


@pytest.mark.parametrize("arch", ["fast_rcnn", "sppnet", "rcnn"])
def test_loss_and_predict(arch):
    model = _model(arch)
    model.train()
    losses = model(_batch(), mode="loss")
    assert set(losses) == {"loss_roi_cls", "loss_roi_box"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        preds = model(_batch(), mode="predict")
    assert len(preds) == 2 and all(isinstance(p, Instances) for p in preds)
    assert len(preds[0]) > 0 and len(preds[1]) == 0  # the second image has no proposals
    assert (preds[0].boxes[:, 2] <= 160).all() and (preds[0].boxes[:, 3] <= 128).all()  # original size


def test_missing_proposals_is_a_clear_error():
    model = _model("fast_rcnn").eval()
    with pytest.raises(ValueError, match="precomputed proposals"):
        model(_batch(with_proposals=False), mode="predict")


def test_fast_rcnn_needs_a_precomputed_source():
    cfg = load_config(CONFIGS / "fast_rcnn" / "shapes.yaml", [*TINY, "model.proposals.source=rpn"])
    with pytest.raises(ValueError, match="selective_search"):
        build_model(cfg.model, NUM_CLASSES)


def test_fast_rcnn_uses_roi_pool_and_shares_the_roi_head_class():
    from detseg.models.roi.poolers import RoIPoolPooler
    from detseg.models.roi.roi_heads import RoIHeads

    model = _model("fast_rcnn")
    assert isinstance(model.roi_heads, RoIHeads) and isinstance(model.roi_heads.pooler, RoIPoolPooler)


def test_bg_iou_low_ignores_far_proposals():
    gt = torch.tensor([[[0.0, 0, 10, 10]]])
    cands = torch.tensor([[[0.0, 0, 10, 10], [0, 0, 10, 4], [0, 0, 10, 0.5], [50, 50, 60, 60]]])
    valid = torch.ones(1, 1, dtype=torch.bool)
    _, labels = match_boxes(cands, gt, valid, 0.5, 0.5, False, bg_low=0.1)
    assert labels.tolist() == [[1, 0, IGNORE, IGNORE]]
    _, labels = match_boxes(cands, gt, valid, 0.5, 0.5, False)
    assert labels.tolist() == [[1, 0, 0, 0]]


def test_spp_pooler_size_and_levels_equal_roi_pool():
    feature = torch.randn(2, 5, 12, 16)
    boxes = [torch.tensor([[0.0, 0, 40, 40], [8, 8, 60, 44]]), torch.tensor([[16.0, 4, 64, 48]])]
    pooler = SPPPooler("s4", 4, [4, 2, 1], channels=5)
    out = pooler({"s4": feature}, boxes, [(48, 64), (48, 64)])
    assert out.shape == (3, 5 * (16 + 4 + 1)) == (3, pooler.flat_dim)
    manual = torch.cat([roi_pool(feature, boxes, l, 0.25).flatten(1) for l in (4, 2, 1)], 1)
    torch.testing.assert_close(out, manual)
    # the 1x1 level is the max over the RoI's cells
    torch.testing.assert_close(out[0, -5:], feature[0, :, :11, :11].amax(dim=(1, 2)))


def test_crop_and_warp_of_a_box_equals_the_crop():
    images = torch.randn(2, 3, 40, 50)
    box = torch.tensor([[7.0, 5, 23, 21]])  # 16 x 16
    out = crop_and_warp(images, [torch.zeros(0, 4), box], warp_size=16)
    assert out.shape == (1, 3, 16, 16)
    torch.testing.assert_close(out[0], images[1, :, 5:21, 7:23])


def test_context_padding_dilates_boxes():
    box = torch.tensor([[10.0, 10, 30, 50]])
    padded = context_boxes(box, warp_size=32, padding=8)  # the box fills the middle 16 of 32 pixels
    torch.testing.assert_close(padded, torch.tensor([[0.0, -10, 40, 70]]))


def test_spp_multi_scale_pools_each_roi_at_the_scale_nearest_the_canonical_size():
    g = torch.Generator().manual_seed(0)
    maps = {f"s4@{i}": torch.randn(1, 3, 16 * f, 16 * f, generator=g) for i, f in enumerate((1, 2, 4))}
    pooler = SPPPooler("s4", 4, [2, 1], channels=3, test_scales=[1, 2, 4], canonical_size=56)
    # sides 56, 28 and 14 px: 56 px is canonical at scale 1, 28 px at scale 2, 14 px at scale 4
    rois = torch.tensor([[0.0, 0, 56, 56], [4, 4, 32, 32], [20, 20, 34, 34]])
    out = pooler(maps, [rois], [(64, 64)])
    for k, (i, factor) in enumerate([(0, 1), (1, 2), (2, 4)]):
        single = SPPPooler("s4", 4, [2, 1], channels=3)({"s4": maps[f"s4@{i}"]}, [rois[k:k + 1] * factor], None)
        torch.testing.assert_close(out[k:k + 1], single)


def test_sppnet_multi_scale_test_at_one_scale_equals_single_scale():
    model = _model("sppnet").eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        single = model(_batch(), mode="predict")
        model.roi_heads.pooler.test_scales = [1.0]
        multi = model(_batch(), mode="predict")
        model.roi_heads.pooler.test_scales = [1.0, 2.0]
        two = model(_batch(), mode="predict")
    for a, b in zip(single, multi):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
    assert len(two[0]) > 0 and not torch.equal(two[0].scores, single[0].scores)


def test_multi_scale_test_is_sppnet_only():
    cfg = load_config(CONFIGS / "fast_rcnn" / "shapes.yaml", [*TINY, "model.roi.spp_test_scales=[1,2]"])
    with pytest.raises(ValueError, match="spp_test_scales"):
        build_model(cfg.model, NUM_CLASSES)


@pytest.mark.parametrize("upsample", [1, 2, 4])
def test_roi_pool_upsample_makes_the_grid_rounding_finer(upsample):
    """On a map whose value is the x of each cell's centre, a 1x1 RoIPool returns the centre of the last
    cell read, so its distance to the box's right edge is the rounding: at most the (upsampled) cell."""
    from detseg.models.roi.poolers import RoIPoolPooler

    stride, size = 8, 32
    ramp = ((torch.arange(size).float() + 0.5) * stride).expand(1, 1, size, size)
    left = torch.rand(400, generator=torch.Generator().manual_seed(0)) * 100 + 40
    boxes = torch.stack([left, left, left + 40, left + 40], 1)  # clear of the borders, where bilinear clamps
    pooled = RoIPoolPooler("s8", stride, 1, upsample)({"s8": ramp}, [boxes], None).flatten()
    error = (pooled - boxes[:, 2]).abs()
    cell = stride / upsample
    assert error.max() <= cell + 1e-4
    assert error.max() > cell * 0.75  # and the rounding is really that coarse, not finer


def test_roi_pool_upsample_is_checked():
    cfg = load_config(CONFIGS / "faster_rcnn" / "shapes.yaml", ["model.roi.pool_upsample=2"])
    with pytest.raises(ValueError, match="pool_upsample is for pooler 'roi_pool', not 'roi_align'"):
        build_model(cfg.model, NUM_CLASSES)
    cfg = load_config(CONFIGS / "fast_rcnn" / "shapes.yaml", [*TINY, "model.roi.pool_upsample=0"])
    with pytest.raises(ValueError, match="pool_upsample must be a whole factor >= 1, got 0"):
        build_model(cfg.model, NUM_CLASSES)

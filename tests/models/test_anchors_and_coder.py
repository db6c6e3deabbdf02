"""Anchors and the box coder equal torchvision's, tensor for tensor."""
from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder as TVBoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList

from detseg.models.layers.box_coder import BoxCoder
from detseg.models.proposals.anchors import AnchorGenerator, base_anchors

RATIOS = [0.5, 1.0, 2.0]


# ---------------------------------------------------------------- anchors


@pytest.mark.parametrize("sizes, ratios", [([32], RATIOS), ([128, 256, 512], RATIOS), ([24, 40], [0.25, 1.0, 3.0, 1.5])])
def test_base_anchors_equal_torchvision(sizes, ratios):
    tv = TVAnchorGenerator((tuple(sizes),), (tuple(ratios),))
    expected = tv.generate_anchors(sizes, ratios)
    got = base_anchors(sizes, ratios)
    assert got.dtype == torch.float32
    assert got.shape == (len(sizes) * len(ratios), 4)
    assert torch.equal(got, expected)


def test_base_anchor_values_by_hand():
    # size 32, ratio 0.5 (h/w): w = 32 * sqrt(2) = 45.25 -> +-22.6 -> 23; h = 22.6 -> +-11.3 -> 11
    got = base_anchors([32], [0.5, 1.0, 2.0])
    assert got.tolist() == [[-23.0, -11.0, 23.0, 11.0], [-16.0, -16.0, 16.0, 16.0], [-11.0, -23.0, 11.0, 23.0]]


def _tv_anchors(sizes, ratios, image_hw, grids, batch=2):
    tv = TVAnchorGenerator(tuple(tuple(s) for s in sizes), (tuple(ratios),) * len(sizes))
    images = torch.zeros(batch, 3, *image_hw)
    image_list = ImageList(images, [tuple(image_hw)] * batch)
    feats = [torch.zeros(batch, 1, *g) for g in grids]
    return tv(image_list, feats)


@pytest.mark.parametrize("image_hw", [(128, 128), (64, 192)])
def test_anchor_generator_equals_torchvision_fpn_levels(image_hw):
    strides = [4, 8, 16, 32, 64]
    sizes = [[16], [32], [64], [128], [256]]
    grids = [(image_hw[0] // s, image_hw[1] // s) for s in strides]
    expected = _tv_anchors(sizes, RATIOS, image_hw, grids)
    got = AnchorGenerator(sizes, RATIOS)(grids, strides, torch.device("cpu"))
    assert [len(a) for a in got] == [g[0] * g[1] * 3 for g in grids]
    for per_image in expected:  # torchvision repeats the same anchors for every image
        assert torch.equal(torch.cat(got), per_image)


def test_nine_anchors_per_location_on_one_stride16_map():
    sizes, grid = [[128, 256, 512]], (5, 7)
    gen = AnchorGenerator(sizes, RATIOS)
    assert gen.num_anchors_per_location == [9]
    (anchors,) = gen([grid], [16], torch.device("cpu"))
    assert anchors.shape == (5 * 7 * 9, 4)
    (expected,) = _tv_anchors(sizes, RATIOS, (80, 112), [grid], batch=1)
    assert torch.equal(anchors, expected)
    # location-major: the 9 anchors of location (row 1, col 2) are the base anchors shifted by (32, 16)
    loc = 1 * 7 + 2
    shift = torch.tensor([32.0, 16.0, 32.0, 16.0])
    assert torch.equal(anchors[loc * 9 : loc * 9 + 9], base_anchors([128, 256, 512], RATIOS) + shift)


def test_anchor_generator_level_count_mismatch_is_explained():
    gen = AnchorGenerator([[32], [64]], RATIOS)
    with pytest.raises(ValueError, match="model.rpn.anchor_sizes"):
        gen([(4, 4)], [16], torch.device("cpu"))


def test_anchor_generator_cache_follows_grid_size():
    gen = AnchorGenerator([[32]], RATIOS)
    (small,) = gen([(2, 2)], [16], "cpu")
    (large,) = gen([(3, 4)], [16], "cpu")
    assert small.shape == (2 * 2 * 3, 4) and large.shape == (3 * 4 * 3, 4)
    (again,) = gen([(2, 2)], [16], "cpu")
    assert torch.equal(again, small)


# ---------------------------------------------------------------- box coder


def _random_boxes(n: int, seed: int, max_xy: float = 200.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * max_xy
    wh = torch.rand(n, 2, generator=g) * 100 + 2
    return torch.cat([xy, xy + wh], dim=1)


WEIGHTS = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]


@pytest.mark.parametrize("weights", WEIGHTS)
def test_encode_decode_round_trip(weights):
    refs, targets = _random_boxes(300, 0), _random_boxes(300, 1)
    coder = BoxCoder(weights)
    deltas = coder.encode(targets, refs)
    assert deltas.shape == (300, 4)
    decoded = coder.decode(deltas, refs)
    assert decoded.shape == (300, 1, 4)
    torch.testing.assert_close(decoded[:, 0], targets, atol=1e-3, rtol=1e-5)
    # a box encodes to zero deltas against itself
    assert torch.equal(coder.encode(refs, refs), torch.zeros_like(refs))


@pytest.mark.parametrize("weights", WEIGHTS)
def test_encode_equals_torchvision(weights):
    refs, targets = _random_boxes(300, 2), _random_boxes(300, 3)
    expected = TVBoxCoder(weights).encode_single(targets, refs)
    got = BoxCoder(weights).encode(targets, refs)
    assert torch.equal(got, expected)  # same formula, same float ops: bit-identical


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("num_classes", [1, 3])
def test_decode_equals_torchvision_including_clamp(weights, num_classes):
    refs = _random_boxes(200, 4)
    g = torch.Generator().manual_seed(5)
    deltas = torch.randn(200, num_classes * 4, generator=g) * 2
    deltas[:20, 2::4] = 80.0  # far past the log(1000/16) clamp even with weight 5 or 10
    deltas[20:40, 3::4] = 120.0
    expected = TVBoxCoder(weights).decode_single(deltas, refs).view(200, num_classes, 4)
    got = BoxCoder(weights).decode(deltas, refs)
    assert got.shape == (200, num_classes, 4)
    assert torch.equal(got, expected)
    # clamped: width is exactly exp(log(1000/16)) = 62.5 times the reference width, and finite
    ref_w = refs[:20, 2] - refs[:20, 0]
    got_w = got[:20, :, 2] - got[:20, :, 0]
    torch.testing.assert_close(got_w, (62.5 * ref_w)[:, None].expand_as(got_w), rtol=1e-5, atol=1e-3)
    assert torch.isfinite(got).all()
    assert math.isclose(BoxCoder(weights).clip, math.log(1000.0 / 16))


def test_decode_broadcasts_shared_references_over_a_batch():
    """The RPN decodes [B, N, 4] deltas against [1, N, 4] anchors."""
    refs = _random_boxes(50, 6)
    deltas = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(7))
    coder = BoxCoder()
    got = coder.decode(deltas, refs[None])
    assert got.shape == (3, 50, 1, 4)
    for b in range(3):
        assert torch.equal(got[b, :, 0], TVBoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(deltas[b], refs))

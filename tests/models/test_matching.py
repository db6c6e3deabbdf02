"""Batched matching/sampling equal torchvision's per-image Matcher and respect the sampling budget."""
from __future__ import annotations

import pytest
import torch
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from detseg.models.layers.matching import BACKGROUND, IGNORE, match_boxes, pad_boxes, sample_balanced
from detseg.models.layers.postprocess import clip_to_image_sizes, top_k_per_image


def _boxes(n: int, g: torch.Generator, size: float = 128.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * size * 0.8
    wh = torch.rand(n, 2, generator=g) * size * 0.4 + 4
    return torch.cat([xy, xy + wh], dim=1)


def _near(gt: torch.Tensor, n: int, g: torch.Generator, scale: float) -> torch.Tensor:
    """Jittered copies of gt boxes, so every IoU band (fg, ignored, bg) is populated."""
    idx = torch.randint(len(gt), (n,), generator=g)
    wh = (gt[idx, 2:] - gt[idx, :2]).repeat(1, 2)
    return gt[idx] + torch.randn(n, 4, generator=g) * scale * wh


def _tv_labels(gt: torch.Tensor, candidates: torch.Tensor, fg: float, bg: float, low_quality: bool):
    matches = Matcher(fg, bg, allow_low_quality_matches=low_quality)(box_iou(gt, candidates))
    labels = torch.full_like(matches, IGNORE)
    labels[matches >= 0] = 1
    labels[matches == Matcher.BELOW_LOW_THRESHOLD] = BACKGROUND
    return matches, labels


def _scene(seed: int, gt_counts=(5, 0, 3, 1)):
    g = torch.Generator().manual_seed(seed)
    gts = [_boxes(n, g) for n in gt_counts]
    pool = torch.cat([b for b in gts if len(b)])
    # shared candidates (like anchors): random boxes plus tight and loose jitters of the gts
    candidates = torch.cat([_boxes(150, g), _near(pool, 60, g, 0.03), _near(pool, 60, g, 0.15)])
    return gts, candidates


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fg, bg, low_quality", [(0.7, 0.3, True), (0.5, 0.5, False), (0.7, 0.3, False)])
def test_match_boxes_equals_torchvision_matcher_per_image(seed, fg, bg, low_quality):
    gts, candidates = _scene(seed)
    gt, gt_valid = pad_boxes(gts)
    matched, labels = match_boxes(candidates, gt, gt_valid, fg, bg, allow_low_quality=low_quality)
    assert matched.shape == labels.shape == (len(gts), len(candidates))
    seen = set()
    for i, boxes in enumerate(gts):
        if len(boxes) == 0:
            assert torch.all(labels[i] == BACKGROUND)  # an image without ground truth is all background
            continue
        iou = box_iou(boxes, candidates)
        assert torch.all(iou.max(dim=1).values > 0)  # torchvision's rule differs only for gts touching nothing
        tv_matches, tv_labels = _tv_labels(boxes, candidates, fg, bg, low_quality)
        assert torch.equal(labels[i], tv_labels), i
        fg_mask = labels[i] == 1
        assert torch.equal(matched[i][fg_mask], tv_matches[fg_mask])
        seen |= set(labels[i].tolist())
    # the scene exercises every label; (0.5, 0.5) has no ignored band
    assert seen == ({1, BACKGROUND, IGNORE} if fg != bg else {1, BACKGROUND})


def test_low_quality_matches_add_each_gts_best_candidates():
    gt = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    candidates = torch.tensor([[0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 5.0, 5.0], [50, 50, 60, 60]])
    valid = torch.ones(1, 1, dtype=torch.bool)
    _, strict = match_boxes(candidates, gt, valid, 0.7, 0.3, allow_low_quality=False)
    _, loose = match_boxes(candidates, gt, valid, 0.7, 0.3, allow_low_quality=True)
    assert strict.tolist() == [[IGNORE, IGNORE, BACKGROUND, BACKGROUND]]  # IoU 0.5, 0.5, 0.25, 0
    assert loose.tolist() == [[1, 1, BACKGROUND, BACKGROUND]]  # both tied best matches become positive


def test_gt_that_touches_no_candidate_does_not_make_positives():
    gt = torch.tensor([[[100.0, 100.0, 110.0, 110.0]]])
    candidates = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    _, labels = match_boxes(candidates, gt, torch.ones(1, 1, dtype=torch.bool), 0.7, 0.3, allow_low_quality=True)
    assert labels.tolist() == [[BACKGROUND, BACKGROUND]]


def test_match_boxes_per_image_candidates_and_padding():
    """[B, N, 4] candidates (RoI proposals) with padded gt: padding never wins a match."""
    g = torch.Generator().manual_seed(3)
    gts = [_boxes(4, g), _boxes(1, g)]
    cands = [torch.cat([_near(b, 30, g, 0.05), _boxes(20, g)]) for b in gts]
    gt, gt_valid = pad_boxes(gts)
    props, _ = pad_boxes(cands)
    matched, labels = match_boxes(props, gt, gt_valid, 0.5, 0.5, allow_low_quality=False)
    for i in range(2):
        tv_matches, tv_labels = _tv_labels(gts[i], cands[i], 0.5, 0.5, False)
        assert torch.equal(labels[i], tv_labels)
        assert torch.equal(matched[i][labels[i] == 1], tv_matches[labels[i] == 1])
        assert int(matched[i][labels[i] == 1].max()) < len(gts[i])


# ---------------------------------------------------------------- sampling


def _labels(counts, n=600, seed=0):
    """Rows with the given (#pos, #neg, #ignored), shuffled."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for pos, neg, ign in counts:
        row = torch.tensor([1] * pos + [BACKGROUND] * neg + [IGNORE] * ign + [IGNORE] * (n - pos - neg - ign))
        rows.append(row[torch.randperm(n, generator=g)])
    return torch.stack(rows)


@pytest.mark.parametrize("per_image, fraction", [(64, 0.25), (256, 0.5), (8, 0.5)])
def test_sample_balanced_counts(per_image, fraction):
    counts = [(10, 100, 50), (200, 300, 0), (0, 5, 20), (3, 0, 10), (0, 0, 30), (40, 500, 10)]
    labels = _labels(counts)
    sampled = sample_balanced(labels, per_image, fraction, generator=torch.Generator().manual_seed(0))
    assert sampled.dtype == torch.bool and sampled.shape == labels.shape
    for i, (pos, neg, _) in enumerate(counts):
        want_pos = min(pos, int(per_image * fraction))
        want_neg = min(neg, per_image - want_pos)
        assert int((sampled[i] & (labels[i] == 1)).sum()) == want_pos, i
        assert int((sampled[i] & (labels[i] == BACKGROUND)).sum()) == want_neg, i
    assert not torch.any(sampled & (labels == IGNORE))


def test_sample_balanced_is_random_but_seedable():
    labels = _labels([(100, 400, 0)])
    a = sample_balanced(labels, 32, 0.25, generator=torch.Generator().manual_seed(1))
    b = sample_balanced(labels, 32, 0.25, generator=torch.Generator().manual_seed(1))
    c = sample_balanced(labels, 32, 0.25, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_balanced_covers_all_candidates_over_draws():
    """Not always the first ones: every positive gets picked at some point."""
    labels = _labels([(20, 0, 0)], n=20)
    g = torch.Generator().manual_seed(0)
    hits = sum(sample_balanced(labels, 4, 0.5, generator=g).int() for _ in range(60))
    assert torch.all(hits > 0)


# ---------------------------------------------------------------- padding and per-image top-k


def test_pad_boxes_shapes_and_mask():
    a = torch.arange(8, dtype=torch.float32).view(2, 4) + 1
    c = torch.arange(12, dtype=torch.float32).view(3, 4) + 100
    padded, valid = pad_boxes([a, torch.zeros(0, 4), c])
    assert padded.shape == (3, 3, 4) and padded.dtype == torch.float32
    assert valid.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    assert torch.equal(padded[0, :2], a) and torch.equal(padded[2], c)
    assert torch.all(padded[~valid] == 0)


def test_pad_boxes_all_empty_keeps_min_len():
    padded, valid = pad_boxes([torch.zeros(0, 4), torch.zeros(0, 4)])
    assert padded.shape == (2, 1, 4)
    assert not valid.any()
    padded, valid = pad_boxes([torch.zeros(0, 4)], min_len=0)
    assert padded.shape == (1, 0, 4) and valid.shape == (1, 0)


def test_top_k_per_image_keeps_first_k_in_order():
    image_idx = torch.tensor([1, 0, 1, 1, 0, 2, 1, 0, 0])
    keep, counts = top_k_per_image(image_idx, num_images=4, k=2)
    assert keep.tolist() == [1, 4, 0, 2, 5]
    assert counts == [2, 2, 1, 0]
    keep, counts = top_k_per_image(image_idx, num_images=3, k=10)
    assert keep.tolist() == [1, 4, 7, 8, 0, 2, 3, 6, 5]
    assert counts == [4, 4, 1]


def test_top_k_per_image_matches_a_python_loop():
    g = torch.Generator().manual_seed(0)
    image_idx = torch.randint(0, 5, (300,), generator=g)
    keep, counts = top_k_per_image(image_idx, 6, 17)
    expected = [j for i in range(6) for j in (image_idx == i).nonzero().flatten().tolist()[:17]]
    assert keep.tolist() == expected
    assert counts == [min(17, int((image_idx == i).sum())) for i in range(6)]


def test_clip_to_image_sizes_uses_each_images_size():
    boxes = torch.tensor([[-5.0, -5.0, 500.0, 500.0], [-5.0, -5.0, 500.0, 500.0]])
    clipped = clip_to_image_sizes(boxes, torch.tensor([0, 1]), [(40, 60), (100, 30)])
    assert clipped.tolist() == [[0.0, 0.0, 60.0, 40.0], [0.0, 0.0, 30.0, 100.0]]

"""SSD matching and hard negative mining."""
import torch

from detseg.models.dense.ssd_loss import hard_negative_mask, match_default_boxes, ssd_losses
from detseg.models.layers.box_coder import BoxCoder


def test_matching_thresholds_and_best_box_per_object():
    defaults = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 12.0], [50.0, 50.0, 60.0, 60.0],
                             [100.0, 100.0, 110.0, 110.0]])
    gt = torch.tensor([[[0.0, 0.0, 10.0, 11.0], [52.0, 52.0, 70.0, 70.0], [0.0, 0.0, 0.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    matched = match_default_boxes(defaults, gt, valid, 0.5)
    # boxes 0, 1 overlap object 0 above 0.5; box 2 overlaps object 1 at IoU 64 / 360 < 0.5 but is its
    # best box, so it is matched anyway; box 3 overlaps nothing; the padded row never matches
    assert matched.tolist() == [[0, 0, 1, -1]]


def test_image_without_objects_is_all_background():
    defaults = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 20.0]])
    matched = match_default_boxes(defaults, torch.zeros(1, 1, 4), torch.zeros(1, 1, dtype=torch.bool), 0.5)
    assert matched.tolist() == [[-1, -1]]


def test_hard_negatives_are_three_per_positive_with_the_highest_loss():
    loss = torch.arange(20.0).flip(0)[None].repeat(2, 1)  # entry i has loss 19 - i
    positive = torch.zeros(2, 20, dtype=torch.bool)
    positive[0, [0, 5]] = True  # two positives, among them the highest loss
    negative = hard_negative_mask(loss, positive, 3.0)
    # six negatives: the highest losses that are not positives
    assert negative[0].nonzero().flatten().tolist() == [1, 2, 3, 4, 6, 7]
    assert not (negative & positive).any()
    assert negative[1].sum() == 0  # no positives, no negatives


def test_losses_count_positives_and_mined_negatives_only():
    """With perfect box offsets the box loss is zero; the class loss averages over positives."""
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    defaults = torch.tensor([[0.0, 0.0, 10.0, 10.0]] + [[20.0 * i, 50.0, 20.0 * i + 10, 60.0] for i in range(8)])
    gt = torch.tensor([[[1.0, 0.0, 11.0, 10.0]]])
    logits = torch.zeros(1, 9, 3)
    logits[0, 0, 2] = 5.0  # the positive box predicts class label 1 (+1 for background) confidently
    logits[0, 1:4, 1] = torch.tensor([3.0, 2.0, 1.0])  # three negatives that look like objects
    deltas = torch.zeros(1, 9, 4)
    deltas[0, 0] = coder.encode(gt[0, 0], defaults[0])
    losses = ssd_losses(logits, deltas, defaults, gt, torch.ones(1, 1, dtype=torch.bool), torch.tensor([[1]]),
                        coder, 0.5, 3.0)
    assert losses["loss_ssd_box"].item() == 0.0
    ce = torch.nn.functional.cross_entropy(logits[0], torch.tensor([2] + [0] * 8), reduction="none")
    torch.testing.assert_close(losses["loss_ssd_cls"], ce[:4].sum())  # the 3 hardest negatives, 1 positive

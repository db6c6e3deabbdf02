"""YOLO v1 target encoding and loss: the cell of the centre, the responsible predictor, sqrt(w), sqrt(h)."""
import math

import torch

from detseg.models.dense.yolo_loss import cell_boxes, encode_targets, responsible_predictor, yolo_losses

S, B, C = 7, 2, 3
INPUT = (224, 224)  # cells of 32 pixels


def _targets(boxes, labels):
    gt = torch.tensor([boxes], dtype=torch.float32)
    valid = torch.ones(1, len(boxes), dtype=torch.bool)
    return encode_targets(gt, valid, torch.tensor([labels]), S, INPUT)


def test_centre_lands_in_its_cell_with_offsets_and_square_roots():
    # centre (100, 50): column 100 // 32 = 3, row 50 // 32 = 1; size 64 x 36
    targets = _targets([[68.0, 32.0, 132.0, 68.0]], [2])
    assert targets.has_object.sum() == 1 and targets.has_object[0, 1, 3]
    x, y, sqrt_w, sqrt_h = targets.coords[0, 1, 3].tolist()
    assert math.isclose(x, 100 / 32 - 3, abs_tol=1e-6) and math.isclose(y, 50 / 32 - 1, abs_tol=1e-6)
    assert math.isclose(sqrt_w, math.sqrt(64 / 224), rel_tol=1e-6)
    assert math.isclose(sqrt_h, math.sqrt(36 / 224), rel_tol=1e-6)
    assert targets.labels[0, 1, 3] == 2
    assert torch.equal(targets.boxes[0, 1, 3], torch.tensor([68.0, 32.0, 132.0, 68.0]))


def test_a_cell_holds_one_object_the_largest():
    # both centres in cell (row 0, column 0); the second is larger; the third is in the last cell
    targets = _targets([[2.0, 2.0, 20.0, 20.0], [0.0, 0.0, 30.0, 30.0], [200.0, 200.0, 224.0, 224.0]], [0, 1, 2])
    assert targets.has_object.sum() == 2
    assert targets.labels[0, 0, 0] == 1 and targets.labels[0, 6, 6] == 2


def test_padding_rows_are_not_objects():
    gt = torch.tensor([[[10.0, 10.0, 50.0, 50.0], [0.0, 0.0, 0.0, 0.0]]])
    targets = encode_targets(gt, torch.tensor([[True, False]]), torch.tensor([[1, 0]]), S, INPUT)
    assert targets.has_object.sum() == 1


def test_decoding_inverts_encoding():
    box = [40.0, 60.0, 140.0, 100.0]
    targets = _targets([box], [0])
    decoded = cell_boxes(targets.coords, INPUT)[targets.has_object]
    torch.testing.assert_close(decoded, torch.tensor([box]), atol=1e-4, rtol=1e-5)


def test_responsible_predictor_is_the_highest_iou_one():
    target = torch.tensor([10.0, 10.0, 50.0, 50.0]).view(1, 1, 1, 4)
    preds = torch.tensor([[0.0, 0.0, 20.0, 20.0], [12.0, 12.0, 48.0, 52.0]]).view(1, 1, 1, 2, 4)
    best, iou = responsible_predictor(preds, target)
    assert best.item() == 1
    assert iou[0, 0, 0, 1] > iou[0, 0, 0, 0] > 0
    preds = preds.flip(3)  # the order of the predictors does not matter
    assert responsible_predictor(preds, target)[0].item() == 0


def _perfect_grid(targets):
    """Predictor 1 of each object cell equals the target (confidence = its IoU = 1), the rest is zero."""
    grid = torch.zeros(1, S, S, B * 5 + C)
    cells = targets.has_object[0]
    grid[0, cells, 5:9] = targets.coords[0, cells]
    grid[0, cells, 9] = 1.0
    grid[0, cells, 10 + targets.labels[0, cells]] = 1.0
    return grid


def test_loss_is_zero_for_a_perfect_prediction_and_squares_sqrt_errors():
    targets = _targets([[68.0, 32.0, 132.0, 68.0], [150.0, 150.0, 200.0, 210.0]], [2, 0])
    grid = _perfect_grid(targets)
    losses = yolo_losses(grid, targets, B, INPUT, lambda_coord=5.0, lambda_noobj=0.5)
    assert set(losses) == {"loss_yolo_xy", "loss_yolo_wh", "loss_yolo_obj", "loss_yolo_noobj", "loss_yolo_cls"}
    for key, value in losses.items():
        assert value.item() < 1e-10, key
    # an error of 0.1 on sqrt(w) costs lambda_coord * 0.1^2, whatever the box size
    grid[0, 1, 3, 7] += 0.1
    wh = yolo_losses(grid, targets, B, INPUT, 5.0, 0.5)["loss_yolo_wh"]
    assert math.isclose(wh.item(), 5.0 * 0.01, rel_tol=1e-3)


def test_noobj_and_class_terms_are_weighted_as_in_the_paper():
    targets = _targets([[68.0, 32.0, 132.0, 68.0]], [2])
    grid = _perfect_grid(targets)
    grid[0, 0, 0, 4] = 0.4  # confidence in an empty cell: lambda_noobj * 0.4^2
    grid[0, 0, 0, 10] = 0.9  # a class probability in an empty cell: not penalised
    grid[0, 1, 3, 10] = 0.5  # a wrong class in the object's cell: 0.5^2
    losses = yolo_losses(grid, targets, B, INPUT, 5.0, 0.5)
    assert math.isclose(losses["loss_yolo_noobj"].item(), 0.5 * 0.16, rel_tol=1e-5)
    assert math.isclose(losses["loss_yolo_cls"].item(), 0.25, rel_tol=1e-5)

"""YOLO v1's target encoding and sum-squared loss (Redmon et al. 2016, section 2.2), batched.

A cell's prediction is B boxes of (x, y, sqrt w, sqrt h, confidence) and C class probabilities:
x, y are the box centre's offset inside the cell, w, h fractions of the input size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class CellTargets:
    has_object: Tensor  # bool [N, S, S]: the cell holds an object's centre
    boxes: Tensor  # [N, S, S, 4] that object, xyxy in input pixels
    coords: Tensor  # [N, S, S, 4] (x, y, sqrt w, sqrt h) as the network predicts them
    labels: Tensor  # int64 [N, S, S]


def cell_boxes(coords: Tensor, input_hw: tuple[int, int]) -> Tensor:
    """(x, y, sqrt w, sqrt h) [N, S, S, ..., 4] -> xyxy in input pixels."""
    grid = coords.shape[1]
    shape = (1, grid, 1) + (1,) * (coords.dim() - 4)
    rows = torch.arange(grid, device=coords.device, dtype=coords.dtype).view(shape)
    cols = rows.view(1, 1, grid, *shape[3:])
    height, width = input_hw
    cx = (cols + coords[..., 0]) / grid * width
    cy = (rows + coords[..., 1]) / grid * height
    half_w = coords[..., 2].clamp(min=0) ** 2 * width / 2
    half_h = coords[..., 3].clamp(min=0) ** 2 * height / 2
    return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=-1)


def encode_targets(gt: Tensor, gt_valid: Tensor, gt_labels: Tensor, grid: int,
                   input_hw: tuple[int, int]) -> CellTargets:
    """Each object goes to the cell holding its centre; a cell holds one object (v1 predicts one class
    per cell), the largest when several centres share it."""
    num_images = gt.shape[0]
    height, width = input_hw
    cx, cy = (gt[..., 0] + gt[..., 2]) / 2, (gt[..., 1] + gt[..., 3]) / 2
    col = (cx / width * grid).floor().long().clamp(0, grid - 1)
    row = (cy / height * grid).floor().long().clamp(0, grid - 1)
    cell = torch.where(gt_valid, row * grid + col, grid * grid)  # padding goes to a spare cell
    area = ((gt[..., 2] - gt[..., 0]) * (gt[..., 3] - gt[..., 1])).masked_fill(~gt_valid, -1.0)
    rank = area.argsort(dim=1, stable=True).argsort(dim=1)  # unique per image: a deterministic winner
    winner = torch.full((num_images, grid * grid + 1), -1, dtype=rank.dtype, device=gt.device)
    winner = winner.scatter_reduce(1, cell, rank, reduce="amax")
    images, objects = ((rank == winner.gather(1, cell)) & gt_valid).nonzero(as_tuple=True)
    where = (images, cell[images, objects])
    boxes = gt.new_zeros(num_images, grid * grid, 4)
    boxes[where] = gt[images, objects]
    has_object = torch.zeros(num_images, grid * grid, dtype=torch.bool, device=gt.device)
    has_object[where] = True
    labels = torch.zeros(num_images, grid * grid, dtype=torch.int64, device=gt.device)
    labels[where] = gt_labels[images, objects]
    coords = gt.new_zeros(num_images, grid * grid, 4)
    coords[where] = torch.stack((
        cx[images, objects] / width * grid - col[images, objects],
        cy[images, objects] / height * grid - row[images, objects],
        ((gt[images, objects, 2] - gt[images, objects, 0]) / width).clamp(min=0).sqrt(),
        ((gt[images, objects, 3] - gt[images, objects, 1]) / height).clamp(min=0).sqrt(),
    ), dim=-1)
    square = (num_images, grid, grid)
    return CellTargets(has_object.view(square), boxes.view(*square, 4), coords.view(*square, 4), labels.view(square))


def paired_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of matching rows [..., 4] x [..., 4] -> [...]."""
    lt = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    rb = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(dim=-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(dim=-1)
    return inter / (area1 + area2 - inter).clamp(min=1e-9)


def responsible_predictor(pred_boxes: Tensor, target_boxes: Tensor) -> tuple[Tensor, Tensor]:
    """pred_boxes [N, S, S, B, 4], target_boxes [N, S, S, 4] -> (index of the highest-IoU predictor
    [N, S, S], the IoU of every predictor [N, S, S, B])."""
    iou = paired_iou(pred_boxes, target_boxes.unsqueeze(-2).expand_as(pred_boxes))
    return iou.argmax(dim=-1), iou


def yolo_losses(grid: Tensor, targets: CellTargets, boxes_per_cell: int, input_hw: tuple[int, int],
                lambda_coord: float, lambda_noobj: float, class_weights: Tensor | None = None) -> dict[str, Tensor]:
    """The paper's five sum-squared terms, each divided by the number of images; ``class_weights`` [C]
    scales each object cell's class term by its class's weight."""
    num_images, cells = grid.shape[0], grid.shape[1]
    preds = grid[..., : boxes_per_cell * 5].reshape(num_images, cells, cells, boxes_per_cell, 5)
    probs = grid[..., boxes_per_cell * 5 :]
    with torch.no_grad():
        best, iou = responsible_predictor(cell_boxes(preds[..., :4], input_hw), targets.boxes)
    responsible = F.one_hot(best, boxes_per_cell).bool() & targets.has_object[..., None]
    coords = preds[..., :4][responsible]
    wanted = targets.coords.unsqueeze(-2).expand_as(preds[..., :4])[responsible]
    confidence = preds[..., 4]
    one_hot = F.one_hot(targets.labels, probs.shape[-1]).to(probs.dtype)
    class_error = (probs - one_hot).pow(2)
    if class_weights is not None:
        class_error = class_error * class_weights[targets.labels].unsqueeze(-1)
    return {
        "loss_yolo_xy": lambda_coord * (coords[:, :2] - wanted[:, :2]).pow(2).sum() / num_images,
        "loss_yolo_wh": lambda_coord * (coords[:, 2:] - wanted[:, 2:]).pow(2).sum() / num_images,
        # the confidence target is the IoU of the predicted box with the object it is responsible for
        "loss_yolo_obj": (confidence[responsible] - iou[responsible]).pow(2).sum() / num_images,
        "loss_yolo_noobj": lambda_noobj * confidence[~responsible].pow(2).sum() / num_images,
        "loss_yolo_cls": class_error[targets.has_object].sum() / num_images,
    }

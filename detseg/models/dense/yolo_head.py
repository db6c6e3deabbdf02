"""YOLO v1's head: one feature map -> an S x S x (B*5 + C) tensor of boxes, confidences and classes."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detseg.models.dense.yolo_loss import cell_boxes, encode_targets, yolo_losses
from detseg.models.layers.features import FeatureSpec
from detseg.models.layers.postprocess import clip_to_image_sizes, select_detections, top_class_candidates
from detseg.models.layers.targets import padded_targets
from detseg.structures import Batch, Instances


class YOLOHead(nn.Module):
    """Optional 3x3 convs, the map pooled to S x S, then the paper's fully connected layers (or a 1x1
    conv per cell). Outputs are linear, as in the paper; predict clamps confidences and probabilities.
    ``class_weights``: one per class for the class term of the loss, None: unweighted."""

    def __init__(self, in_spec: dict[str, FeatureSpec], in_feature: str, num_classes: int, *, grid_size: int,
                 boxes_per_cell: int, conv_dims: list[int], fc_dim: int | None, dropout: float, lambda_coord: float,
                 lambda_noobj: float, score_thresh: float, nms_thresh: float, detections_per_image: int,
                 class_weights: list[float] | None = None):
        super().__init__()
        self.in_feature = in_feature
        self.grid, self.boxes, self.num_classes = grid_size, boxes_per_cell, num_classes
        self.outputs = self.boxes * 5 + num_classes
        channels = in_spec[in_feature].channels
        layers: list[nn.Module] = []
        for dim in conv_dims:
            layers += [nn.Conv2d(channels, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim),
                       nn.LeakyReLU(0.1, inplace=True)]
            channels = dim
        self.convs = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(self.grid))
        if fc_dim:
            self.predictor = nn.Sequential(
                nn.Flatten(), nn.Linear(channels * self.grid**2, fc_dim), nn.LeakyReLU(0.1, inplace=True),
                nn.Dropout(dropout), nn.Linear(fc_dim, self.grid**2 * self.outputs),
            )
        else:
            self.predictor = nn.Conv2d(channels, self.outputs, kernel_size=1)
        self.lambda_coord, self.lambda_noobj = lambda_coord, lambda_noobj
        self.score_thresh = score_thresh  # detseg.app.pipeline.apply_test_overrides sets it
        self.nms_thresh, self.detections_per_image = nms_thresh, detections_per_image
        self.register_buffer("cls_loss_weight", None if class_weights is None else  # a loss setting, not saved
                             torch.tensor(list(class_weights), dtype=torch.float32), persistent=False)

    def forward(self, features: dict[str, Tensor], input_hw: tuple[int, int]) -> dict:
        out = self.predictor(self.convs(features[self.in_feature]))
        if out.dim() == 2:  # fully connected: the cells come out flat
            grid = out.view(-1, self.grid, self.grid, self.outputs)
        else:
            grid = out.permute(0, 2, 3, 1)
        return {"grid": grid, "input_hw": tuple(input_hw)}

    def loss(self, raw: dict, batch: Batch) -> dict[str, Tensor]:
        gt, gt_valid, gt_labels = padded_targets(batch)
        targets = encode_targets(gt, gt_valid, gt_labels, self.grid, raw["input_hw"])
        return yolo_losses(raw["grid"], targets, self.boxes, raw["input_hw"], self.lambda_coord, self.lambda_noobj,
                           self.cls_loss_weight)

    @torch.no_grad()
    def predict(self, raw: dict, image_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Per-image detections in the network input's pixels (every box is a candidate of every class)."""
        boxes, scores = self.boxes_and_scores(raw, image_sizes)
        return select_detections(top_class_candidates(boxes, scores, scores.shape[1]), len(image_sizes),
                                 self.num_classes, self.score_thresh, self.nms_thresh, self.detections_per_image)

    def boxes_and_scores(self, raw: dict, image_sizes) -> tuple[Tensor, Tensor]:
        """Boxes [B, S*S*B, 4] clipped to each image, class-specific confidences [B, S*S*B, K]."""
        grid = raw["grid"]
        num_images = len(grid)
        preds = grid[..., : self.boxes * 5].reshape(num_images, self.grid, self.grid, self.boxes, 5)
        boxes = cell_boxes(preds[..., :4], raw["input_hw"]).reshape(num_images, -1, 4)
        boxes = clip_to_image_sizes(boxes, torch.arange(num_images, device=grid.device), image_sizes)
        confidence = preds[..., 4].clamp(0, 1)
        probs = grid[..., self.boxes * 5 :].clamp(0, 1)
        # class-specific confidence: Pr(class | object) x Pr(object) x IoU
        scores = (probs.unsqueeze(3) * confidence.unsqueeze(-1)).reshape(num_images, -1, self.num_classes)
        return boxes, scores

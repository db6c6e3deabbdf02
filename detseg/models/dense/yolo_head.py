"""YOLO v1's head: one feature map -> an S x S x (B*5 + C) tensor of boxes, confidences and classes."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from detseg.models.layers.features import FeatureSpec
from detseg.models.dense.postprocess import select_detections
from detseg.models.dense.targets import padded_targets
from detseg.models.dense.yolo_loss import cell_boxes, encode_targets, yolo_losses
from detseg.models.layers.postprocess import clip_to_image_sizes
from detseg.structures import Batch, Instances


class YOLOHead(nn.Module):
    """Optional 3x3 convs, the map pooled to S x S, then the paper's fully connected layers (or a 1x1
    conv per cell). Outputs are linear, as in the paper; predict clamps confidences and probabilities."""

    def __init__(self, cfg, in_spec: dict[str, FeatureSpec], num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.grid, self.boxes, self.num_classes = cfg.grid_size, cfg.boxes_per_cell, num_classes
        self.outputs = self.boxes * 5 + num_classes
        channels = in_spec[cfg.in_feature].channels
        layers: list[nn.Module] = []
        for dim in cfg.conv_dims:
            layers += [nn.Conv2d(channels, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim),
                       nn.LeakyReLU(0.1, inplace=True)]
            channels = dim
        self.convs = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(self.grid))
        if cfg.fc_dim:
            self.predictor = nn.Sequential(
                nn.Flatten(), nn.Linear(channels * self.grid**2, cfg.fc_dim), nn.LeakyReLU(0.1, inplace=True),
                nn.Dropout(cfg.dropout), nn.Linear(cfg.fc_dim, self.grid**2 * self.outputs),
            )
        else:
            self.predictor = nn.Conv2d(channels, self.outputs, kernel_size=1)
        self.score_thresh = cfg.score_thresh

    def forward(self, features: dict[str, Tensor], input_hw: tuple[int, int]) -> dict:
        out = self.predictor(self.convs(features[self.cfg.in_feature]))
        if out.dim() == 2:  # fully connected: the cells come out flat
            grid = out.view(-1, self.grid, self.grid, self.outputs)
        else:
            grid = out.permute(0, 2, 3, 1)
        return {"grid": grid, "input_hw": tuple(input_hw)}

    def loss(self, raw: dict, batch: Batch) -> dict[str, Tensor]:
        gt, gt_valid, gt_labels = padded_targets(batch)
        targets = encode_targets(gt, gt_valid, gt_labels, self.grid, raw["input_hw"])
        return yolo_losses(raw["grid"], targets, self.boxes, raw["input_hw"], self.cfg.lambda_coord,
                           self.cfg.lambda_noobj)

    @torch.no_grad()
    def predict(self, raw: dict, batch: Batch) -> list[Instances]:
        boxes, scores = self.boxes_and_scores(raw, batch.image_sizes)
        return select_detections(boxes, scores, batch, self.score_thresh, self.cfg.nms_thresh,
                                 scores.shape[1], self.cfg.detections_per_image)

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

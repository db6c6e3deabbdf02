"""Box RoI heads: sample RoIs, pool, classify and regress; batched over the images of a batch.

``predict`` answers in the network input's pixels (boxes clipped to each image's input size); the
meta-architecture maps them to the original image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detseg.models.layers.box_coder import BoxCoder
from detseg.models.layers.matching import IGNORE, match_boxes, pad_boxes, sample_balanced
from detseg.models.layers.postprocess import class_box_candidates, clip_to_image_sizes, select_detections
from detseg.models.layers.targets import padded_targets
from detseg.models.roi.box_head import BoxHead, BoxPredictor
from detseg.structures import Batch, Instances

MIN_BOX_SIDE = 1e-2  # detections narrower than this (pixels) are dropped, as torchvision's


class RoIHeads(nn.Module):
    """``pooler`` gives [R, C, P, P] maps (or, with a ``flat_dim``, vectors) that ``box_head`` reads.

    ``class_weights``: one per class, weighing the box classifier's cross-entropy (torch's weighted mean;
    background weighs 1); None: unweighted."""

    def __init__(self, pooler: nn.Module, box_head: BoxHead, num_classes: int, *,
                 bbox_reg_weights: list[float], fg_iou_thresh: float, bg_iou_thresh: float, bg_iou_low: float,
                 batch_size_per_image: int, positive_fraction: float, add_gt_as_proposals: bool,
                 smooth_l1_beta: float, score_thresh: float, nms_thresh: float, detections_per_image: int,
                 class_weights: list[float] | None = None):
        super().__init__()
        self.num_classes = num_classes
        # not in the state dict: a loss setting, not a weight (checkpoints load into an unweighted model)
        self.register_buffer("cls_loss_weight", None if class_weights is None else
                             torch.tensor([1.0, *class_weights], dtype=torch.float32), persistent=False)
        self.pooler = pooler
        self.box_head = box_head
        self.box_predictor = BoxPredictor(box_head.out_dim, num_classes)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.fg_iou_thresh, self.bg_iou_thresh, self.bg_iou_low = fg_iou_thresh, bg_iou_thresh, bg_iou_low
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.add_gt_as_proposals, self.smooth_l1_beta = add_gt_as_proposals, smooth_l1_beta
        self.score_thresh = score_thresh  # detseg.app.pipeline.apply_test_overrides sets it
        self.nms_thresh, self.detections_per_image = nms_thresh, detections_per_image

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor],
                image_sizes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """Raw class logits [R, K+1] and deltas [R, (K+1)*4] for the given RoIs."""
        pooled = self.pooler(features, proposals, image_sizes)
        logits, deltas = self.box_predictor(self.box_head(pooled))
        return logits.float(), deltas.float()  # full precision for losses and decoding under autocast

    def loss(self, features: dict[str, Tensor], proposals: list[Tensor], batch: Batch) -> dict[str, Tensor]:
        rois, classes, targets, _ = self.sample(proposals, batch)
        return self.box_loss(features, rois, classes, targets, batch)

    def box_loss(self, features: dict[str, Tensor], rois: list[Tensor], classes: Tensor, targets: Tensor,
                 batch: Batch) -> dict[str, Tensor]:
        logits, deltas = self(features, rois, batch.image_sizes)
        loss_cls = F.cross_entropy(logits, classes, weight=self.cls_loss_weight)
        positive = classes > 0
        picked = deltas.view(len(deltas), -1, 4)[positive, classes[positive]]
        loss_box = F.smooth_l1_loss(picked, targets[positive], beta=self.smooth_l1_beta, reduction="sum")
        return {"loss_roi_cls": loss_cls, "loss_roi_box": loss_box / max(len(classes), 1)}

    @torch.no_grad()
    def sample(self, proposals: list[Tensor], batch: Batch) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
        """Match proposals (plus ground truth) to boxes and draw a balanced set per image.

        Returns RoIs per image, class targets (0 = background, k + 1 = label k), box targets, and
        the matched ground truth of each RoI as an index into its image's non-crowd boxes.
        """
        gt, gt_valid, gt_labels = padded_targets(batch)
        if self.add_gt_as_proposals:
            proposals = [torch.cat([p, g[v]]) for p, g, v in zip(proposals, gt, gt_valid)]
        props, valid = pad_boxes(proposals)
        matched, labels = match_boxes(props, gt, gt_valid, self.fg_iou_thresh, self.bg_iou_thresh, False,
                                      self.bg_iou_low)
        labels[~valid] = IGNORE
        sampled = sample_balanced(labels, self.batch_size_per_image, self.positive_fraction)
        rows = torch.arange(len(props), device=props.device)[:, None]
        classes = torch.where(labels > 0, gt_labels[rows, matched] + 1, 0)[sampled]
        rois = props[sampled]
        targets = self.box_coder.encode(gt[rows, matched][sampled], rois)
        return list(rois.split(sampled.sum(1).tolist())), classes, targets, matched[sampled]

    @torch.no_grad()
    def predict(self, features: dict[str, Tensor], proposals: list[Tensor],
                image_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Per-image detections in the network input's pixels."""
        logits, deltas = self(features, proposals, image_sizes)
        return self.detections(logits, deltas, proposals, image_sizes)

    def detections(self, logits: Tensor, deltas: Tensor, proposals: list[Tensor],
                   image_sizes: list[tuple[int, int]]) -> list[Instances]:
        counts = [len(p) for p in proposals]
        image_idx = torch.repeat_interleave(torch.arange(len(counts), device=logits.device),
                                            torch.tensor(counts, device=logits.device))
        boxes = self.box_coder.decode(deltas, torch.cat(proposals))  # [R, K+1, 4]
        boxes = clip_to_image_sizes(boxes, image_idx, image_sizes)[:, 1:]
        scores = F.softmax(logits, -1)[:, 1:]
        return select_detections(class_box_candidates(boxes, scores, image_idx), len(image_sizes),
                                 scores.shape[1], self.score_thresh, self.nms_thresh, self.detections_per_image,
                                 MIN_BOX_SIDE)

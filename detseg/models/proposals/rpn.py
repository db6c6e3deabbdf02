"""Region Proposal Network (Ren et al. 2015), batched over images and levels."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation, remove_small_boxes

from detseg.models.layers.features import FeatureSpec
from detseg.models.layers.box_coder import BoxCoder
from detseg.models.layers.postprocess import clip_to_image_sizes, top_k_per_image
from detseg.models.layers.threaded_nms import batched_nms
from detseg.models.layers.matching import match_boxes, sample_balanced
from detseg.models.layers.targets import padded_targets
from detseg.models.proposals.anchors import AnchorGenerator
from detseg.structures import Batch


class RPNHead(nn.Module):
    """Shared 3x3 conv, then per-anchor objectness and box deltas (names as torchvision's)."""

    def __init__(self, channels: int, num_anchors: int, conv_depth: int = 1):
        super().__init__()
        self.conv = nn.Sequential(
            *[Conv2dNormActivation(channels, channels, kernel_size=3, norm_layer=None) for _ in range(conv_depth)]
        )
        self.cls_logits = nn.Conv2d(channels, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(channels, num_anchors * 4, kernel_size=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.zeros_(layer.bias)

    def forward(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        """-> objectness [B, H*W*A], deltas [B, H*W*A, 4], location-major like the anchors."""
        t = self.conv(feature)
        logits, deltas = self.cls_logits(t), self.bbox_pred(t)
        b, a, h, w = logits.shape
        logits = logits.permute(0, 2, 3, 1).reshape(b, -1)
        deltas = deltas.view(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
        return logits, deltas


class RPN(nn.Module):
    """Proposal generator: ``forward(features, batch, with_loss) -> (proposals per image, loss dict)``.

    ``pre_nms_topk`` / ``post_nms_topk`` are (training, test) pairs; proposals are in the network input's
    pixels, clipped to each image.
    """

    def __init__(self, in_spec: dict[str, FeatureSpec], in_features: list[str], *, anchor_sizes: list[list[float]],
                 aspect_ratios: list[float], conv_depth: int, fg_iou_thresh: float, bg_iou_thresh: float,
                 batch_size_per_image: int, positive_fraction: float, pre_nms_topk: tuple[int, int],
                 post_nms_topk: tuple[int, int], nms_thresh: float, min_box_size: float, score_thresh: float,
                 smooth_l1_beta: float):
        super().__init__()
        self.in_features = list(in_features)
        channels = {in_spec[k].channels for k in self.in_features}
        if len(channels) != 1:
            raise ValueError(f"model.rpn.in_features {self.in_features} have different channel counts {channels}")
        self.strides = [in_spec[k].stride for k in self.in_features]
        self.anchor_generator = AnchorGenerator(anchor_sizes, aspect_ratios)
        counts = set(self.anchor_generator.num_anchors_per_location)
        if len(counts) != 1:
            raise ValueError("model.rpn.anchor_sizes must give every level the same number of sizes")
        self.head = RPNHead(channels.pop(), counts.pop(), conv_depth)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction
        self.pre_nms_topk, self.post_nms_topk = tuple(pre_nms_topk), tuple(post_nms_topk)
        self.nms_thresh, self.min_box_size, self.score_thresh = nms_thresh, min_box_size, score_thresh
        self.smooth_l1_beta = smooth_l1_beta

    def forward(self, features: dict[str, Tensor], batch: Batch, with_loss: bool):
        maps = [features[k] for k in self.in_features]
        outputs = [self.head(m) for m in maps]
        # float32 from here on (autocast computes the convolutions in half precision): ranking,
        # decoding and the losses need the full mantissa
        logits = torch.cat([o[0] for o in outputs], dim=1).float()
        deltas = torch.cat([o[1] for o in outputs], dim=1).float()
        anchors_per_level = self.anchor_generator([m.shape[-2:] for m in maps], self.strides, logits.device)
        anchors = torch.cat(anchors_per_level)
        level_sizes = [len(a) for a in anchors_per_level]
        proposals = self._select(deltas.detach(), logits.detach(), anchors, level_sizes, batch.image_sizes)
        losses = self._loss(logits, deltas, anchors, batch) if with_loss else {}
        return proposals, losses

    def _select(self, deltas: Tensor, logits: Tensor, anchors: Tensor, level_sizes: list[int], image_sizes):
        """Top-k per level, decode only those, clip, drop tiny and low boxes, NMS per (image, level),
        top-k per image. Returns one [M_i, 4] tensor per image."""
        pre_k = self.pre_nms_topk[0 if self.training else 1]
        post_k = self.post_nms_topk[0 if self.training else 1]
        num_images, num_levels = logits.shape[0], len(level_sizes)
        offsets = [0, *torch.tensor(level_sizes).cumsum(0).tolist()[:-1]]
        top_idx, levels = [], []
        for level, (scores, offset) in enumerate(zip(logits.split(level_sizes, 1), offsets)):
            idx = scores.topk(min(pre_k, scores.shape[1]), dim=1).indices + offset
            top_idx.append(idx)
            levels.append(torch.full_like(idx, level))
        top_idx, levels = torch.cat(top_idx, 1), torch.cat(levels, 1)
        rows = torch.arange(num_images, device=logits.device)[:, None]
        boxes = self.box_coder.decode(deltas[rows, top_idx], anchors[top_idx]).squeeze(-2)
        scores = logits[rows, top_idx].sigmoid()
        image_idx = rows.expand_as(levels)
        boxes, scores, image_idx, levels = (t.flatten(0, 1) for t in (boxes, scores, image_idx, levels))
        boxes = clip_to_image_sizes(boxes, image_idx, image_sizes)
        keep = remove_small_boxes(boxes, self.min_box_size)
        keep = keep[scores[keep] >= self.score_thresh]
        keep = keep[batched_nms(boxes[keep], scores[keep], (image_idx * num_levels + levels)[keep], self.nms_thresh)]
        keep_top, counts = top_k_per_image(image_idx[keep], num_images, post_k)
        return list(boxes[keep][keep_top].split(counts))

    def _loss(self, logits: Tensor, deltas: Tensor, anchors: Tensor, batch: Batch) -> dict[str, Tensor]:
        gt, gt_valid, _ = padded_targets(batch)
        matched, labels = match_boxes(
            anchors, gt, gt_valid, self.fg_iou_thresh, self.bg_iou_thresh, allow_low_quality=True
        )
        sampled = sample_balanced(labels, self.batch_size_per_image, self.positive_fraction)
        positive = sampled & (labels > 0)
        num_sampled = sampled.sum().clamp(min=1)
        objectness = F.binary_cross_entropy_with_logits(
            logits[sampled], positive[sampled].to(logits.dtype), reduction="sum"
        )
        rows = torch.arange(gt.shape[0], device=gt.device)[:, None]
        matched_gt = gt[rows, matched][positive]
        targets = self.box_coder.encode(matched_gt, anchors.expand(gt.shape[0], -1, -1)[positive])
        box = F.smooth_l1_loss(deltas[positive], targets, beta=self.smooth_l1_beta, reduction="sum")
        return {"loss_rpn_cls": objectness / num_sampled, "loss_rpn_box": box / num_sampled}


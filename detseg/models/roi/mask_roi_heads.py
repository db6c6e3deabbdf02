"""Mask R-CNN's RoI heads: the box heads plus a mask branch on the positive RoIs (training) or on the
final detections (inference). Detections leave in the network input's pixels, ``Instances.masks``
holding each one's M x M own-class mask probabilities over its box (the meta-architecture pastes them)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from detseg.models.roi.box_head import BoxHead
from detseg.models.roi.mask_head import MaskHead
from detseg.models.roi.poolers import RoIAlignPooler
from detseg.models.roi.roi_heads import RoIHeads
from detseg.structures import Batch, Instances


class MaskRoIHeads(RoIHeads):
    """``mask_pooler`` feeds a MaskHead of ``mask_conv_dims`` on ``mask_channels``; the rest as RoIHeads."""

    def __init__(self, pooler, box_head: BoxHead, num_classes: int, *, mask_pooler: RoIAlignPooler,
                 mask_channels: int, mask_conv_dims: list[int], **box_options):
        super().__init__(pooler, box_head, num_classes, **box_options)
        self.mask_pooler = mask_pooler
        self.mask_head = MaskHead(mask_channels, list(mask_conv_dims), num_classes)
        self.mask_size = 2 * mask_pooler.resolution

    def loss(self, features: dict[str, Tensor], proposals: list[Tensor], batch: Batch) -> dict[str, Tensor]:
        rois, classes, targets, matched = self.sample(proposals, batch)
        losses = self.box_loss(features, rois, classes, targets, batch)
        losses["loss_mask"] = self.mask_loss(features, rois, classes, matched, batch)
        return losses

    def mask_loss(self, features: dict[str, Tensor], rois: list[Tensor], classes: Tensor, matched: Tensor,
                  batch: Batch) -> Tensor:
        """Per-pixel binary cross-entropy on the ground-truth class's mask of each positive RoI."""
        if batch.masks is None:
            raise ValueError("Mask R-CNN trains on instance masks: the batch has none (build the dataset "
                             "with with_masks=True; tools/train.py does for model.arch mask_rcnn)")
        image_idx = torch.cat([torch.full((len(r),), i, device=classes.device) for i, r in enumerate(rois)])
        positive = classes > 0
        pos_rois = torch.cat(rois)[positive]
        pos_images = image_idx[positive]
        if len(pos_rois) == 0:  # keeps every mask parameter in the graph (DDP), with zero gradient
            return sum(p.sum() for p in self.mask_head.parameters()) * 0.0
        per_image = [pos_rois[pos_images == i] for i in range(len(rois))]
        logits = self.mask_head(self.mask_pooler(features, per_image, batch.image_sizes))
        logits = logits[torch.arange(len(logits), device=logits.device), classes[positive]]
        # RoIs come image-major from sample(), the order mask_pooler returns them in
        mask_targets = self.mask_targets(pos_rois, pos_images, matched[positive], batch)
        return F.binary_cross_entropy_with_logits(logits, mask_targets)

    def mask_targets(self, rois: Tensor, image_idx: Tensor, matched: Tensor, batch: Batch) -> Tensor:
        """Each RoI's matched ground-truth mask, cut out by the RoI and resized to M x M (soft, in [0, 1]).
        Crowd regions are never matched, so they never become mask targets. One image at a time, so
        only one image's masks exist as float at full resolution (the peak memory of a step)."""
        size = (self.mask_size, self.mask_size)
        targets = []
        for i, (masks, crowd) in enumerate(zip(batch.masks, batch.iscrowd)):
            chosen = image_idx == i  # RoIs come image-major from sample(), so the concatenation keeps their order
            gt = masks[~crowd][:, None].to(rois.dtype)
            boxes = torch.cat([matched[chosen, None].to(rois.dtype), rois[chosen]], dim=1)
            # aligned=True: pixel i covers [i, i + 1), so a RoI equal to a box mask's box gives all ones
            # (torchvision's aligned=False shifts by half a pixel and blurs the mask's far edges)
            targets.append(roi_align(gt, boxes, size, spatial_scale=1.0, sampling_ratio=0, aligned=True)[:, 0])
        return torch.cat(targets)

    @torch.no_grad()
    def predict(self, features: dict[str, Tensor], proposals: list[Tensor],
                image_sizes: list[tuple[int, int]]) -> list[Instances]:
        logits, deltas = self(features, proposals, image_sizes)
        instances = self.detections(logits, deltas, proposals, image_sizes)
        for inst, probs in zip(instances, self.mask_probabilities(features, instances, image_sizes)):
            inst.masks = probs
        return instances

    def mask_probabilities(self, features: dict[str, Tensor], instances: list[Instances],
                           image_sizes: list[tuple[int, int]]) -> list[Tensor]:
        """Sigmoid of each detection's own-class mask logits, [N_i, M, M] per image."""
        boxes = [inst.boxes for inst in instances]
        labels = torch.cat([inst.labels for inst in instances])
        if len(labels) == 0:
            empty = boxes[0].new_zeros((0, self.mask_size, self.mask_size))
            return [empty for _ in instances]
        logits = self.mask_head(self.mask_pooler(features, boxes, image_sizes))
        probs = logits[torch.arange(len(labels), device=labels.device), labels + 1].sigmoid()
        return list(probs.split([len(b) for b in boxes]))

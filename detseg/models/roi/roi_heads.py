"""Box RoI heads: sample RoIs, pool, classify and regress; batched over the images of a batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms

from detseg.models.layers.features import FeatureSpec
from detseg.models.layers.box_coder import BoxCoder
from detseg.models.layers.matching import IGNORE, match_boxes, pad_boxes, sample_balanced
from detseg.models.layers.postprocess import clip_to_image_sizes, top_k_per_image
from detseg.models.roi.box_head import BoxHead, BoxPredictor
from detseg.models.roi.poolers import build_pooler
from detseg.structures import Batch, Instances
from detseg.structures.boxes import scale_boxes


class RoIHeads(nn.Module):
    def __init__(self, cfg, in_spec: dict[str, FeatureSpec], num_classes: int, pooler: nn.Module | None = None):
        """``pooler``: a custom one (R-CNN's crop-warp-backbone); poolers with ``flat_dim`` give vectors."""
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.pooler = pooler if pooler is not None else build_pooler(cfg, in_spec)
        flat_dim = getattr(self.pooler, "flat_dim", None)
        if flat_dim is not None:  # SPP / R-CNN: already a vector per RoI, the fcs read it directly
            if cfg.head_conv_dims:
                raise ValueError("model.roi.head_conv_dims needs a square pooled map; this pooler gives vectors")
            self.box_head = BoxHead(flat_dim, 1, [], cfg.head_fc_dims)
        else:
            channels = {in_spec[k].channels for k in cfg.in_features}
            if len(channels) != 1:
                raise ValueError(f"model.roi.in_features {cfg.in_features} have different channel counts {channels}")
            self.box_head = BoxHead(channels.pop(), cfg.pooler_resolution, cfg.head_conv_dims, cfg.head_fc_dims)
        self.box_predictor = BoxPredictor(self.box_head.out_dim, num_classes)
        self.box_coder = BoxCoder(cfg.bbox_reg_weights)
        self.score_thresh = cfg.score_thresh

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], batch: Batch) -> tuple[Tensor, Tensor]:
        """Raw class logits [R, K+1] and deltas [R, (K+1)*4] for the given RoIs."""
        pooled = self.pooler(features, proposals, batch.image_sizes)
        logits, deltas = self.box_predictor(self.box_head(pooled))
        return logits.float(), deltas.float()  # full precision for losses and decoding under autocast

    def loss(self, features: dict[str, Tensor], proposals: list[Tensor], batch: Batch) -> dict[str, Tensor]:
        rois, classes, targets, _ = self.sample(proposals, batch)
        return self.box_loss(features, rois, classes, targets, batch)

    def box_loss(self, features: dict[str, Tensor], rois: list[Tensor], classes: Tensor, targets: Tensor,
                 batch: Batch) -> dict[str, Tensor]:
        logits, deltas = self(features, rois, batch)
        loss_cls = F.cross_entropy(logits, classes)
        positive = classes > 0
        picked = deltas.view(len(deltas), -1, 4)[positive, classes[positive]]
        loss_box = F.smooth_l1_loss(picked, targets[positive], beta=self.cfg.smooth_l1_beta, reduction="sum")
        return {"loss_roi_cls": loss_cls, "loss_roi_box": loss_box / max(len(classes), 1)}

    @torch.no_grad()
    def sample(self, proposals: list[Tensor], batch: Batch) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
        """Match proposals (plus ground truth) to boxes and draw a balanced set per image.

        Returns RoIs per image, class targets (0 = background, k + 1 = label k), box targets, and
        the matched ground truth of each RoI as an index into its image's non-crowd boxes.
        """
        keep = [~c for c in batch.iscrowd]
        gt_boxes = [b[k] for b, k in zip(batch.boxes, keep)]
        if self.cfg.add_gt_as_proposals:
            proposals = [torch.cat([p, g]) for p, g in zip(proposals, gt_boxes)]
        props, valid = pad_boxes(proposals)
        gt, gt_valid = pad_boxes(gt_boxes)
        gt_labels = torch.zeros(gt_valid.shape, dtype=torch.int64, device=gt.device)
        for i, (labels, k) in enumerate(zip(batch.labels, keep)):
            gt_labels[i, : int(k.sum())] = labels[k]
        matched, labels = match_boxes(props, gt, gt_valid, self.cfg.fg_iou_thresh, self.cfg.bg_iou_thresh, False,
                                      self.cfg.bg_iou_low)
        labels[~valid] = IGNORE
        sampled = sample_balanced(labels, self.cfg.batch_size_per_image, self.cfg.positive_fraction)
        rows = torch.arange(len(props), device=props.device)[:, None]
        classes = torch.where(labels > 0, gt_labels[rows, matched] + 1, 0)[sampled]
        rois = props[sampled]
        targets = self.box_coder.encode(gt[rows, matched][sampled], rois)
        return list(rois.split(sampled.sum(1).tolist())), classes, targets, matched[sampled]

    @torch.no_grad()
    def predict(self, features: dict[str, Tensor], proposals: list[Tensor], batch: Batch) -> list[Instances]:
        logits, deltas = self(features, proposals, batch)
        return self.to_instances(self.detections(logits, deltas, proposals, batch), batch)

    def detections(self, logits: Tensor, deltas: Tensor, proposals: list[Tensor],
                   batch: Batch) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per-image (boxes, scores, labels) in the transformed image's pixels."""
        counts = [len(p) for p in proposals]
        image_idx = torch.repeat_interleave(torch.arange(len(counts), device=logits.device), torch.tensor(counts, device=logits.device))
        boxes = self.box_coder.decode(deltas, torch.cat(proposals))  # [R, K+1, 4]
        boxes = clip_to_image_sizes(boxes, image_idx, batch.image_sizes)[:, 1:]
        scores = F.softmax(logits, -1)[:, 1:]
        return self.select_detections(boxes, scores, image_idx, len(batch))

    @staticmethod
    def to_instances(detections: list[tuple[Tensor, Tensor, Tensor]], batch: Batch) -> list[Instances]:
        """Per-image (boxes, scores, labels) in the transformed image -> Instances in the original one."""
        return [Instances(scale_boxes(boxes, batch.image_sizes[i], batch.orig_sizes[i]), scores, labels)
                for i, (boxes, scores, labels) in enumerate(detections)]

    def select_detections(self, boxes: Tensor, scores: Tensor, image_idx: Tensor,
                          num_images: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Threshold, drop degenerate boxes, per-class NMS and top-k, each in one op for all images."""
        num_rois, num_classes = scores.shape
        labels = torch.arange(num_classes, device=scores.device).expand(num_rois, -1).reshape(-1)
        image_idx = image_idx[:, None].expand(-1, num_classes).reshape(-1)
        boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = torch.where((scores > self.score_thresh) & (wh >= 1e-2).all(dim=1))[0]
        groups = image_idx[keep] * num_classes + labels[keep]
        keep = keep[batched_nms(boxes[keep], scores[keep], groups, self.cfg.nms_thresh)]
        top, counts = top_k_per_image(image_idx[keep], num_images, self.cfg.detections_per_image)
        return [(boxes[idx], scores[idx], labels[idx]) for idx in keep[top].split(counts)]

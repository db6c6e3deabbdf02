"""Export graphs: a trained model as a function of one uint8 image [1, 3, H, W] that ONNX can trace.

The eager models work on a ``Batch`` and split their flat results into per-image lists with host
counts (``.tolist()``), which a trace would freeze to the counts of the example input. These wrappers
reuse every learned module and box helper of the model but run the post-processing for one image,
where no split is needed, and take sizes from the traced input (``torch._shape_as_tensor``), so one
graph serves every input size when exported with dynamic axes. tests/export/test_export_*.py check
them against ``model(batch, mode="predict")``.

Outputs, in the pixels of the input image (the runtime maps them back to the original image):
- detectors: ``boxes`` float32 [N, 4] xyxy, ``scores`` float32 [N], ``labels`` int64 [N] (0..K-1);
  Mask R-CNN adds ``mask_probs`` float32 [N, M, M], each detection's own-class mask probabilities
  over its box (pasted onto the image outside the graph, by detseg.models.layers.postprocess);
- FCN: ``logits`` float32 [1, K + 1, H, W] (channel 0 = background).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, remove_small_boxes

from detseg.models.layers.postprocess import kept_by_nms
from detseg.models.proposals.anchors import AnchorGenerator
from detseg.models.roi.roi_heads import MIN_BOX_SIDE

DETECTION_OUTPUTS = ("boxes", "scores", "labels")


class _Normalise(nn.Module):
    """The detector's ``preprocess`` for one image: scale, normalise, zero-pad to the divisibility."""

    def __init__(self, model: nn.Module, dynamic: bool):
        super().__init__()
        self.model = model
        self.dynamic = dynamic

    def normalised(self, image: Tensor) -> Tensor:
        images = (image.float() / 255 - self.model.pixel_mean) / self.model.pixel_std
        div = self.model.size_divisibility
        if div <= 1:
            return images
        h, w = images.shape[-2:]
        if not self.dynamic:  # constant padding keeps every shape static (YOLO's adaptive pooling needs it)
            h, w = int(h), int(w)
            if h % div == 0 and w % div == 0:
                return images
        return F.pad(images, (0, (div - w % div) % div, 0, (div - h % div) % div))


def image_limits(image: Tensor) -> Tensor:
    """(w, h, w, h) of the traced input as a float tensor: clipping that follows dynamic sizes."""
    hw = torch._shape_as_tensor(image)[-2:].to(torch.float32)
    return torch.cat([hw.flip(0), hw.flip(0)])


def clip(boxes: Tensor, limits: Tensor) -> Tensor:
    return torch.minimum(boxes.clamp(min=0), limits)


def top_k(values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``values.topk(min(k, len(values)))`` with the minimum taken in the graph, not at trace time."""
    count = torch._shape_as_tensor(values)[0:1]
    k = torch.min(torch.cat([torch.tensor([k], dtype=count.dtype), count]))
    return values.topk(k)


def nms_top(boxes: Tensor, scores: Tensor, groups: Tensor, iou: float, k: int) -> Tensor:
    """Indices kept by per-group NMS, best first, at most ``k`` (top_k_per_image for one image)."""
    return batched_nms(boxes, scores, groups, iou)[:k]


class TwoStageGraph(_Normalise):
    """Faster / Mask R-CNN: image -> boxes, scores, labels (+ mask_probs)."""

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        model = self.model
        limits = image_limits(image)
        features = model.features_of(self.normalised(image))
        proposals = self.proposals(features, limits)
        hw = [tuple(image.shape[-2:])]  # only read for the pooler's scale, a power of two per level
        heads = model.roi_heads
        logits, deltas = heads.box_predictor(heads.box_head(heads.pooler(features, [proposals], hw)))
        boxes = clip(heads.box_coder.decode(deltas, proposals), limits)[:, 1:]
        scores = F.softmax(logits, -1)[:, 1:]
        boxes, scores, labels = self.select(boxes, scores)
        if getattr(heads, "mask_head", None) is None:
            return boxes, scores, labels
        mask_logits = heads.mask_head(heads.mask_pooler(features, [boxes], hw))
        picked = mask_logits[torch.arange(labels.shape[0]), labels + 1]
        return boxes, scores, labels, picked.sigmoid()

    def proposals(self, features: dict[str, Tensor], limits: Tensor) -> Tensor:
        """RPN._select for one image: top-k per level, decode, clip, drop small/low boxes, NMS per
        level, top-k."""
        rpn = self.model.proposal_generator
        boxes, scores, levels = [], [], []
        for level, (name, cell, stride) in enumerate(zip(rpn.in_features, rpn.anchor_generator.cell_anchors,
                                                         rpn.strides)):
            feature = features[name]
            logits, deltas = rpn.head(feature)
            anchors = AnchorGenerator._grid(cell, feature.shape[-2:], stride, feature.device)
            top_logits, idx = top_k(logits[0], rpn.pre_nms_topk[1])
            boxes.append(rpn.box_coder.decode(deltas[0, idx], anchors[idx]).squeeze(-2))
            scores.append(top_logits.sigmoid())
            levels.append(torch.full_like(idx, level))
        boxes, scores, levels = clip(torch.cat(boxes), limits), torch.cat(scores), torch.cat(levels)
        keep = remove_small_boxes(boxes, rpn.min_box_size)
        keep = keep[scores[keep] >= rpn.score_thresh]
        keep = keep[nms_top(boxes[keep], scores[keep], levels[keep], rpn.nms_thresh, rpn.post_nms_topk[1])]
        return boxes[keep]

    def select(self, boxes: Tensor, scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """RoIHeads' select_detections for one image (its only group id is the label)."""
        heads = self.model.roi_heads
        labels = torch.arange(scores.shape[1]).expand(scores.shape[0], -1).reshape(-1)
        boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
        keep = kept_by_nms(boxes, scores, labels, heads.score_thresh, heads.nms_thresh, MIN_BOX_SIDE)
        keep = keep[:heads.detections_per_image]
        return boxes[keep], scores[keep], labels[keep]


class DenseGraph(_Normalise):
    """SSD / YOLO (fixed input size): image -> boxes, scores, labels."""

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        model, head = self.model, self.model.head
        images = self.normalised(image)
        features = model.backbone(images)
        if model.neck is not None:
            features = model.neck(features)
        raw = head(features, tuple(images.shape[-2:]))
        boxes, scores = head.boxes_and_scores(raw, [tuple(image.shape[-2:])])
        return select_dense(boxes[0], scores[0], head.score_thresh, head.nms_thresh,
                            getattr(head, "topk_candidates", boxes.shape[1]), head.detections_per_image)


def select_dense(boxes: Tensor, scores: Tensor, score_thresh: float, nms_thresh: float, topk_candidates: int,
                 detections_per_image: int) -> tuple[Tensor, Tensor, Tensor]:
    """detseg.models.layers.postprocess.select_detections of top_class_candidates for one image:
    boxes [N, 4], scores [N, K]."""
    num_boxes, num_classes = scores.shape
    top_scores, top_idx = scores.t().topk(min(topk_candidates, num_boxes), dim=1)  # [K, k]
    labels = torch.arange(num_classes)[:, None].expand_as(top_idx).reshape(-1)
    scores, boxes = top_scores.reshape(-1), boxes[top_idx.reshape(-1)]
    kept = kept_by_nms(boxes, scores, labels, score_thresh, nms_thresh)[:detections_per_image]
    return boxes[kept], scores[kept], labels[kept]


class SegmentationGraph(_Normalise):
    """FCN: image -> per-pixel class logits over the image (the divisibility padding cut off)."""

    def forward(self, image: Tensor) -> Tensor:
        model = self.model
        images = self.normalised(image)
        logits = model.head(model.backbone(images), tuple(images.shape[-2:]))
        return logits[..., : image.shape[-2], : image.shape[-1]]


GRAPHS = {"faster_rcnn": TwoStageGraph, "mask_rcnn": TwoStageGraph, "ssd": DenseGraph, "yolo": DenseGraph,
          "fcn": SegmentationGraph, "unet": SegmentationGraph}
SEMANTIC_ARCHS = ("fcn", "unet")  # graphs that output per-pixel logits; the others output detections


def graph_task(arch: str) -> str:
    """What an exported graph of ``arch`` predicts: "semantic" (logits) or "detection" (boxes)."""
    return "semantic" if arch in SEMANTIC_ARCHS else "detection"
FIXED_SIZE_ONLY = ("ssd", "yolo")  # default boxes / grid cells are laid over one input size


def output_names(arch: str) -> list[str]:
    if arch in SEMANTIC_ARCHS:
        return ["logits"]
    return [*DETECTION_OUTPUTS, "mask_probs"] if arch == "mask_rcnn" else list(DETECTION_OUTPUTS)


def export_graph(model: nn.Module, arch: str, dynamic: bool) -> nn.Module:
    if arch not in GRAPHS:
        raise ValueError(f"model.arch '{arch}' cannot be exported to ONNX (supported: {', '.join(GRAPHS)})")
    return GRAPHS[arch](model, dynamic).eval()

"""Mask R-CNN's mask branch: targets, the per-class loss, crowd regions, batched pasting, training on masks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.models.layers.mask_paste import paste_masks
from detseg.structures import Batch

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mask_rcnn" / "shapes.yaml"
TINY = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64,64]",
        "model.mask.conv_dims=[16,16]", "model.rpn.post_nms_topk_train=64", "model.roi.batch_size_per_image=32"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(load_config(CONFIG, TINY).model, 3)


def _batch(boxes, masks, labels, iscrowd=None, size=(96, 128)) -> Batch:
    images = torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return Batch(images=images, image_sizes=[size], orig_sizes=[size], image_ids=[0], boxes=[boxes],
                 labels=[labels], iscrowd=[iscrowd if iscrowd is not None else torch.zeros(len(boxes), dtype=torch.bool)],
                 masks=[masks])


def _rect_mask(size, x1, y1, x2, y2) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def test_mask_targets_crop_the_matched_mask_by_the_roi(model):
    heads = model.roi_heads
    masks = torch.stack([_rect_mask((96, 128), 10, 10, 40, 50), _rect_mask((96, 128), 60, 20, 120, 80)])
    batch = _batch(torch.tensor([[10.0, 10, 40, 50], [60.0, 20, 120, 80]]), masks, torch.tensor([0, 2]))
    rois = torch.tensor([[10.0, 10, 40, 50], [60.0, 20, 180, 80]])  # the second twice as wide as its object
    targets = heads.mask_targets(rois, torch.tensor([0, 0]), torch.tensor([0, 1]), batch)
    m = heads.mask_size
    assert targets.shape == (2, m, m)
    # soft targets: bilinear samples of the mask; only the outermost ring of bins sees the edge
    assert torch.all(targets[0] > 0.9) and torch.all(targets[0][1:-1, 1:-1] > 0.98)
    assert torch.all(targets[1][:, : m // 2 - 1] > 0.9)  # the object fills the RoI's left half
    assert torch.all(targets[1][:, m // 2 + 1:] < 0.01)


def test_mask_loss_trains_only_the_ground_truth_class_channel(model):
    model.train()
    masks = torch.stack([_rect_mask((96, 128), 10, 10, 40, 50)])
    batch = _batch(torch.tensor([[10.0, 10, 40, 50]]), masks, torch.tensor([1]))
    captured = {}

    def keep_output(module, args, output):
        output.retain_grad()
        captured["logits"] = output

    handle = model.roi_heads.mask_head.register_forward_hook(keep_output)
    try:
        losses = model(batch, mode="loss")
    finally:
        handle.remove()
    assert losses["loss_mask"].item() > 0
    losses["loss_mask"].backward()
    grad = captured["logits"].grad.abs().sum(dim=(0, 2, 3))  # per class channel
    assert grad[2] > 0  # label 1 is channel 2 (0 = background)
    assert torch.all(grad[[0, 1, 3]] == 0)


def test_crowd_regions_are_never_mask_targets(model):
    model.train()
    masks = torch.stack([_rect_mask((96, 128), 10, 10, 60, 60)])
    crowd = _batch(torch.tensor([[10.0, 10, 60, 60]]), masks, torch.tensor([1]), torch.tensor([True]))
    losses = model(crowd, mode="loss")
    assert losses["loss_mask"].item() == 0.0  # no positive RoI: the crowd box matches nothing
    losses["loss_mask"].backward()  # still in the graph (DDP needs every parameter used)


def test_batched_paste_equals_torchvision_per_mask_paste():
    g = torch.Generator().manual_seed(0)
    n, size = 50, (157, 211)
    probs = torch.rand(n, 28, 28, generator=g)
    xy = torch.rand(n, 2, generator=g) * 150
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 120 + 0.2], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, size[1])
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, size[0])
    expected = paste_masks_in_image(probs[:, None], boxes, size)[:, 0]
    torch.testing.assert_close(paste_masks(probs, boxes, size, threshold=None), expected, atol=1e-5, rtol=0)
    binary = paste_masks(probs, boxes, size)
    assert binary.dtype == torch.bool and binary.shape == (n, *size)
    differ = binary != (expected >= 0.5)
    assert torch.all((expected[differ] - 0.5).abs() < 1e-5)
    assert paste_masks(probs[:0], boxes[:0], size).shape == (0, *size)


def test_windowed_paste_handles_chunks_and_boxes_past_the_image_edges():
    """More masks than one chunk, boxes of very different sizes, many on the image's edges (their expanded
    boxes reach past it; predictions are clipped to the image first, as here): each mask is computed over
    its chunk's window only, and every pixel still equals torchvision's."""
    g = torch.Generator().manual_seed(1)
    n, size = 150, (120, 90)
    probs = torch.rand(n, 28, 28, generator=g)
    xy = torch.rand(n, 2, generator=g) * 160 - 40
    wh = torch.rand(n, 2, generator=g) ** 3 * 150 + 0.5
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, size[1])
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, size[0])
    boxes[0] = torch.tensor([30.0, 40.0, 30.0, 40.0])  # a point: one pixel's worth of mask at most
    expected = paste_masks_in_image(probs[:, None], boxes, size)[:, 0]
    torch.testing.assert_close(paste_masks(probs, boxes, size, threshold=None), expected, atol=1e-5, rtol=0)
    binary = paste_masks(probs, boxes, size)
    differ = binary != (expected >= 0.5)
    assert torch.all((expected[differ] - 0.5).abs() < 1e-5)
    on_edge = (boxes[:, :2] == 0).any(1) | (boxes[:, 2] == size[1]) | (boxes[:, 3] == size[0])
    assert on_edge.sum() > 20 and binary.sum() > 0


def test_predicted_masks_are_full_size_and_inside_their_boxes(model):
    model.eval()
    model.roi_heads.score_thresh = 0.0
    batch = _batch(torch.zeros(0, 4), torch.zeros(0, 96, 128, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    batch.orig_sizes = [(192, 256)]
    with torch.no_grad():
        out = model(batch, mode="predict")[0]
    assert len(out) > 0 and out.masks.shape == (len(out), 192, 256) and out.masks.dtype == torch.bool
    ys, xs = torch.arange(192)[:, None], torch.arange(256)[None, :]
    for box, mask in zip(out.boxes, out.masks):  # the pasted mask never leaves its (1-px padded) box
        outside = (xs < box[0].floor() - 2) | (xs > box[2].ceil() + 2) | (ys < box[1].floor() - 2) | (ys > box[3].ceil() + 2)
        assert not mask[outside].any()

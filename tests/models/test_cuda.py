"""On a CUDA device: torchvision's compiled ops against their CPU kernels, and a small Faster R-CNN that
predicts as on the CPU in fp32 and trains under bf16 autocast and channels_last (tools/gpu_check.sh runs these)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torchvision.ops import batched_nms, box_iou, nms, roi_align

from detseg.engine import precision
from tests.models.test_detector import _build, _train_batch

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")


@pytest.fixture
def exact_fp32():
    """TF32 matmuls and convolutions round to 10 mantissa bits: the CPU comparison needs true fp32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _boxes(n: int, size: float, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * size * 0.7
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * size * 0.3 + 2], 1)


def test_roi_align_and_nms_on_cuda_equal_the_cpu_kernels():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 16, 40, 48, generator=g)
    rois = torch.cat([torch.randint(0, 2, (300, 1), generator=g).float(), _boxes(300, 160, g)], 1)
    expected = roi_align(feats, rois, 7, 0.25, 2, aligned=True)
    torch.testing.assert_close(roi_align(feats.to(CUDA), rois.to(CUDA), 7, 0.25, 2, aligned=True).cpu(), expected,
                               atol=1e-5, rtol=1e-5)
    boxes, scores = _boxes(2000, 400, g), torch.rand(2000, generator=g)  # distinct scores: one right answer
    labels = torch.randint(0, 5, (2000,), generator=g)
    assert torch.equal(nms(boxes.to(CUDA), scores.to(CUDA), 0.5).cpu(), nms(boxes, scores, 0.5))
    assert torch.equal(batched_nms(boxes.to(CUDA), scores.to(CUDA), labels.to(CUDA), 0.5).cpu(),
                       batched_nms(boxes, scores, labels, 0.5))


def test_faster_rcnn_predicts_on_cuda_as_on_the_cpu_in_fp32(exact_fp32):
    model = _build().eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        expected = model(_train_batch(), mode="predict")
        got = model.to(CUDA)(_train_batch().to(CUDA), mode="predict")
    for exp, out in zip(expected, got):
        assert len(exp) > 0 and abs(len(out) - len(exp)) <= max(1, len(exp) // 50)
        # random weights give near-tied scores, whose order may differ: match each CPU detection instead
        same_label = exp.labels[:, None] == out.labels.cpu()[None, :]
        best_iou, best = (box_iou(exp.boxes, out.boxes.cpu()) * same_label).max(1)
        matched = best_iou > 0.99
        assert matched.float().mean() >= 0.95
        torch.testing.assert_close(out.scores.cpu()[best[matched]], exp.scores[matched], atol=1e-3, rtol=1e-3)


def test_faster_rcnn_trains_and_predicts_on_cuda_under_bf16_and_channels_last():
    settings = SimpleNamespace(amp="bf16", channels_last=True)
    model = precision.prepare_model(_build(), settings, CUDA)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    dtypes = []
    model.backbone.register_forward_hook(lambda m, i, out: dtypes.append(next(iter(out.values())).dtype))
    with precision.autocast(settings, CUDA):
        losses = model(_train_batch().to(CUDA), mode="loss")
    assert dtypes == [torch.bfloat16]
    total = sum(losses.values())
    assert total.dtype == torch.float32 and torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    model.eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad(), precision.autocast(settings, CUDA):
        out = model(_train_batch().to(CUDA), mode="predict")
    assert all(len(o) > 0 and o.boxes.device.type == CUDA.type and torch.isfinite(o.boxes).all() for o in out)

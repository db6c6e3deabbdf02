"""torchvision's RoIPool kernel, run over chunks of RoIs in parallel threads on the CPU.

torchvision's CPU roi_pool and its backward loop over RoIs on one thread, so on a multi-core CPU they
leave all but one core idle; in Fast R-CNN and SPPnet RoIPool over ~2000 proposals is most of the test
time. The kernels release the GIL, so splitting the RoIs into one chunk per intra-op thread and calling
the same kernels from a thread pool uses every core. Forward results are bit-identical to torchvision's
(each RoI is computed by the same kernel); the backward sums the chunks' input gradients, which only
reorders float additions. (RoIAlign splits channels instead: roi_align_levels.)
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import roi_pool

from detseg.models.layers.call_context import capturing_graph
from detseg.models.layers.op_threads import op_executor as _executor
from detseg.models.roi.roi_align_levels import kernel_dtype

# Below this many RoIs a thread hand-off costs more than it saves.
MIN_ROIS_PER_CHUNK = 32


def _kernel_input(features: Tensor) -> tuple[Tensor, torch.dtype]:
    """A CPU map as the kernels read it, float32 NCHW, and the dtype to give the result back in.

    bf16 / fp16 maps from a CPU autocast are pooled in float32 (kernel_dtype): torchvision registers no
    CPU autocast for roi_pool. Channels-last maps (the bf16 default) are made NCHW here once: the kernels
    would copy the whole map in every chunk's call."""
    if features.device.type != "cpu":
        return features, features.dtype
    dtype = features.dtype
    target = kernel_dtype(dtype)
    # one pass for the cast and the layout (.float() then .contiguous() would copy a channels-last map twice)
    return features.to(target, memory_format=torch.contiguous_format), dtype


def _num_chunks(features: Tensor, rois: Tensor) -> int:
    # float32 only: other dtypes (fp64, CUDA's halves) take torchvision's own path and dtype handling
    if features.device.type != "cpu" or features.dtype != torch.float32 or capturing_graph():
        return 1
    return max(1, min(torch.get_num_threads(), len(rois) // MIN_ROIS_PER_CHUNK))


def as_rois(boxes: Tensor | list[Tensor]) -> Tensor:
    """Per-image [Ki, 4] boxes -> [K, 5] (image index, x1, y1, x2, y2); [K, 5] passes through."""
    if isinstance(boxes, Tensor):
        return boxes
    return torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], 1) for i, b in enumerate(boxes)])


def _sum(parts: list[Tensor]) -> Tensor:
    total = parts[0]
    for part in parts[1:]:  # in place: each part is a feature map-sized gradient
        total.add_(part)
    return total


def _roi_pool_chunks(features: Tensor, rois: Tensor, spatial_scale: float, output_size: int,
                     chunks: int) -> tuple[list[Tensor], list[Tensor]]:
    def run(part):
        return torch.ops.torchvision.roi_pool(features, part, spatial_scale, output_size, output_size)
    outputs, argmaxes = zip(*_executor(chunks).map(run, rois.chunk(chunks)))
    return list(outputs), list(argmaxes)


class _ChunkedRoIPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, rois, spatial_scale, output_size, chunks):
        outputs, argmaxes = _roi_pool_chunks(features, rois, spatial_scale, output_size, chunks)
        argmax = torch.cat(argmaxes)  # where each output's max came from: the backward's routing
        ctx.save_for_backward(rois, argmax)
        ctx.args = (spatial_scale, output_size, chunks, features.shape)
        return torch.cat(outputs)

    @staticmethod
    def backward(ctx, grad_output):
        rois, argmax = ctx.saved_tensors
        spatial_scale, output_size, chunks, (n, c, h, w) = ctx.args
        def run(parts):
            grad, part, arg = parts
            return torch.ops.torchvision._roi_pool_backward(
                grad.contiguous(), part, arg, spatial_scale, output_size, output_size, n, c, h, w)
        parts = zip(grad_output.chunk(chunks), rois.chunk(chunks), argmax.chunk(chunks))
        return _sum(list(_executor(chunks).map(run, parts))), None, None, None, None


def threaded_roi_pool(features: Tensor, rois: Tensor | list[Tensor], output_size: int,
                      spatial_scale: float) -> Tensor:
    """``torchvision.ops.roi_pool`` on [K, 5] RoIs or a list of per-image [Ki, 4] boxes, threaded on the CPU."""
    rois = as_rois(rois)
    features, dtype = _kernel_input(features)
    chunks = _num_chunks(features, rois)
    if chunks == 1:
        return roi_pool(features, rois, output_size, spatial_scale).to(dtype)
    rois = rois.to(features.dtype)
    if torch.is_grad_enabled() and features.requires_grad:
        return _ChunkedRoIPool.apply(features, rois, spatial_scale, output_size, chunks).to(dtype)
    # inference: the int64 argmax (twice the output's bytes) is never needed, so never concatenated
    return torch.cat(_roi_pool_chunks(features, rois, spatial_scale, output_size, chunks)[0]).to(dtype)

"""torchvision's RoIAlign and RoIPool kernels, run over chunks of RoIs in parallel threads on the CPU.

torchvision's CPU roi_align / roi_pool and their backwards loop over RoIs on one thread, so on a
multi-core CPU they leave all but one core idle; in Faster R-CNN RoIAlign is a fifth of inference and
of a training step, in Fast R-CNN and SPPnet RoIPool over ~2000 proposals is most of the test time.
The kernels release the GIL, so splitting the RoIs into one chunk per intra-op thread and calling
the same kernels from a thread pool uses every core. Forward results are bit-identical to
torchvision's (each RoI is computed by the same kernel); the backward sums the chunks' input
gradients, which only reorders float additions.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import roi_align, roi_pool

from detseg.models.layers.op_threads import op_executor as _executor

# Below this many RoIs a thread hand-off costs more than it saves.
MIN_ROIS_PER_CHUNK = 32


def _kernel_input(features: Tensor) -> tuple[Tensor, torch.dtype]:
    """A CPU map as the kernels read it, float32 NCHW, and the dtype to give the result back in.

    bf16 / fp16 maps come from a CPU autocast: box coordinates need float32 (bf16 rounds 300 px to 2 px
    steps), the kernels want one dtype for both, and torchvision registers no CPU autocast for roi_pool
    (its roi_align's casts the same way). Channels-last maps (the bf16 default) are made NCHW here once:
    the kernels would copy the whole map in every chunk's call."""
    if features.device.type != "cpu":
        return features, features.dtype
    dtype = features.dtype
    target = torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype
    # one pass for the cast and the layout (.float() then .contiguous() would copy a channels-last map twice)
    return features.to(target, memory_format=torch.contiguous_format), dtype


def _num_chunks(features: Tensor, rois: Tensor) -> int:
    # float32 only: other dtypes (fp64, CUDA's halves) take torchvision's own path and dtype handling
    if features.device.type != "cpu" or features.dtype != torch.float32 or torch.jit.is_tracing():
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


class _ChunkedRoIAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, rois, spatial_scale, output_size, sampling_ratio, aligned, chunks):
        ctx.save_for_backward(rois)
        ctx.args = (spatial_scale, output_size, sampling_ratio, aligned, chunks, features.shape)
        def run(part):
            return torch.ops.torchvision.roi_align(features, part, spatial_scale, output_size, output_size,
                                                   sampling_ratio, aligned)
        return torch.cat(list(_executor(chunks).map(run, rois.chunk(chunks))))

    @staticmethod
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        spatial_scale, output_size, sampling_ratio, aligned, chunks, (n, c, h, w) = ctx.args
        def run(parts):
            grad, part = parts
            return torch.ops.torchvision._roi_align_backward(
                grad.contiguous(), part, spatial_scale, output_size, output_size, n, c, h, w, sampling_ratio, aligned)
        grads = list(_executor(chunks).map(run, zip(grad_output.chunk(chunks), rois.chunk(chunks))))
        return _sum(grads), None, None, None, None, None, None


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


def threaded_roi_align(features: Tensor, rois: Tensor, output_size: int, spatial_scale: float,
                       sampling_ratio: int, aligned: bool = False) -> Tensor:
    """``torchvision.ops.roi_align`` on [K, 5] (image index, x1, y1, x2, y2) RoIs, threaded on the CPU."""
    features, dtype = _kernel_input(features)
    chunks = _num_chunks(features, rois)
    if chunks == 1:
        return roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned).to(dtype)
    return _ChunkedRoIAlign.apply(features, rois.to(features.dtype), spatial_scale, output_size, sampling_ratio,
                                  aligned, chunks).to(dtype)


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


def multilevel_roi_align(maps: list[Tensor], rois: Tensor, levels: Tensor, scales: list[float], output_size: int,
                         sampling_ratio: int, aligned: bool = False) -> Tensor:
    """Inference (no autograd): RoIAlign of each of the [K, 5] ``rois`` on map ``levels[k]``, [K, C, P, P] in
    the maps' dtype. Every level's RoIs are split into chunks spread over the intra-op threads, and each
    chunk's result is cast straight into its rows of one output: no zero fill, per-level concatenation,
    second cast or scatter on the calling thread (together ~25 ms of a 300 ms Faster R-CNN prediction)."""
    dtype, threads = maps[0].dtype, torch.get_num_threads()
    out = torch.empty((len(rois), maps[0].shape[1], output_size, output_size), dtype=dtype)
    tasks = []
    for level, (feature, scale) in enumerate(zip(maps, scales)):
        index = torch.where(levels == level)[0]
        if len(index):
            feature = _kernel_input(feature)[0]
            chunks = max(1, min(threads, len(index) // MIN_ROIS_PER_CHUNK))
            tasks += [(feature, scale, part) for part in index.chunk(chunks)]

    def run(task):
        feature, scale, part = task
        result = torch.ops.torchvision.roi_align(feature, rois[part].to(feature.dtype), scale, output_size,
                                                 output_size, sampling_ratio, aligned)
        out.index_copy_(0, part, result.to(dtype))

    if threads == 1:
        for task in tasks:
            run(task)
    else:
        list(_executor(threads).map(run, tasks))
    return out

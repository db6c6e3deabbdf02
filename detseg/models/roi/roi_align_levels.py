"""RoIAlign over one feature map or several (FPN levels) on the CPU, its work split by channels over threads.

torchvision's CPU roi_align and its backward run on one thread. A channel of the result reads the same
channel of the map only, so each intra-op thread calls torchvision's kernels on its own slice of the
channels, for every level: the threads write disjoint slices of one output (forward) and of each map's
gradient (backward). Compared with splitting the RoIs, no thread needs a whole map-sized gradient to be
summed afterwards, and the maps' conversion to what the kernels read (float32 NCHW, where the bf16
default is channels-last) is split over the threads too. Each element is computed by the same kernel,
in the same order, as by torchvision's MultiScaleRoIAlign: forward and gradients are bit-identical to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from detseg.models.layers.op_threads import op_executor

# Below this many RoIs a thread hand-off costs more than it saves.
MIN_ROIS_TO_SPLIT = 32
# Every thread's forward computes each RoI's sampling points and weights again: with fewer channels than
# this per thread that repeated work outgrows the pooling itself.
MIN_CHANNELS_PER_SLICE = 16


@dataclass(frozen=True)
class _Plan:
    """What every thread does: per map, the output rows it fills (None: all) and their RoIs in the kernel's
    dtype; and the slices of channels, one per thread."""
    rows: list[Tensor | None]
    rois: list[Tensor]
    scales: list[float]
    size: int
    sampling_ratio: int
    aligned: bool
    channel_slices: list[slice]


def kernel_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype torchvision's RoIAlign / RoIPool kernels run in for maps of ``dtype``."""
    # bf16 / fp16 maps come from a CPU autocast: box coordinates need float32 (bf16 rounds 300 px to 2 px
    # steps), the kernels take one dtype for map and boxes, and torchvision's own autocast casts the same way
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def _channel_slices(channels: int, num_rois: int) -> list[slice]:
    if num_rois < MIN_ROIS_TO_SPLIT:
        return [slice(0, channels)]
    parts = max(1, min(torch.get_num_threads(), channels // MIN_CHANNELS_PER_SLICE))
    edges = [channels * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _on_threads(plan: _Plan, work) -> None:
    def untracked(channels: slice) -> None:
        with torch.no_grad():  # grad mode is per thread: a pool thread starts with it on
            work(channels)

    if len(plan.channel_slices) == 1:
        untracked(plan.channel_slices[0])
    else:
        list(op_executor(len(plan.channel_slices)).map(untracked, plan.channel_slices))


def _pool(maps: tuple[Tensor, ...], plan: _Plan) -> Tensor:
    first = maps[0]
    out = first.new_empty((sum(len(r) for r in plan.rois), first.shape[1], plan.size, plan.size))

    def work(channels: slice) -> None:
        target = out[:, channels]
        for feature, rows, rois, scale in zip(maps, plan.rows, plan.rois, plan.scales):
            if len(rois) == 0:
                continue
            part = feature[:, channels].to(rois.dtype, memory_format=torch.contiguous_format)
            result = torch.ops.torchvision.roi_align(part, rois, scale, plan.size, plan.size,
                                                     plan.sampling_ratio, plan.aligned)
            if rows is None:
                target.copy_(result)
            else:
                target.index_copy_(0, rows, result.to(out.dtype))

    _on_threads(plan, work)
    return out


def _pool_backward(grad: Tensor, maps: list[tuple[torch.Size, torch.dtype, torch.memory_format] | None],
                   plan: _Plan) -> list[Tensor | None]:
    """Each map's gradient (None where it needs none or pooled no RoI), in the map's dtype and layout."""
    grads = [None if spec is None or len(rois) == 0 else torch.empty(spec[0], dtype=spec[1], memory_format=spec[2])
             for spec, rois in zip(maps, plan.rois)]

    def work(channels: slice) -> None:
        sliced = grad[:, channels]  # the kernel reads any strides
        for map_grad, rows, rois, scale in zip(grads, plan.rows, plan.rois, plan.scales):
            if map_grad is None:
                continue
            level = (sliced if rows is None else sliced.index_select(0, rows)).to(rois.dtype)
            n, _, h, w = map_grad.shape
            result = torch.ops.torchvision._roi_align_backward(
                level, rois, scale, plan.size, plan.size, n, level.shape[1], h, w, plan.sampling_ratio, plan.aligned)
            map_grad[:, channels].copy_(result)

    _on_threads(plan, work)
    return grads


def _memory_format(t: Tensor) -> torch.memory_format:
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class _RoIAlignLevels(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan: _Plan, *maps: Tensor) -> Tensor:
        ctx.plan = plan
        ctx.specs = [(m.shape, m.dtype, _memory_format(m)) for m in maps]
        return _pool(maps, plan)

    @staticmethod
    def backward(ctx, grad: Tensor):
        needed = [spec if need else None for spec, need in zip(ctx.specs, ctx.needs_input_grad[1:])]
        return (None, *_pool_backward(grad, needed, ctx.plan))


def roi_align_levels(maps: list[Tensor], rois: Tensor, levels: Tensor | None, scales: list[float], output_size: int,
                     sampling_ratio: int, aligned: bool = False) -> Tensor:
    """RoIAlign of the [K, 5] (image index, x1, y1, x2, y2) ``rois``, RoI k on ``maps[levels[k]]`` (``levels``
    None: one map), as torchvision.ops.roi_align / MultiScaleRoIAlign give it: [K, C, P, P] in the maps' dtype,
    differentiable with respect to the maps. CPU maps only."""
    dtype = kernel_dtype(maps[0].dtype)
    if levels is None:
        rows: list[Tensor | None] = [None]
        per_map = [rois.to(dtype)]
    else:
        rows = [torch.where(levels == level)[0] for level in range(len(maps))]
        per_map = [rois[r].to(dtype) for r in rows]
    plan = _Plan(rows, per_map, list(scales), output_size, sampling_ratio, aligned,
                 _channel_slices(maps[0].shape[1], len(rois)))
    if torch.is_grad_enabled() and any(m.requires_grad for m in maps):
        return _RoIAlignLevels.apply(plan, *maps)
    return _pool(tuple(maps), plan)

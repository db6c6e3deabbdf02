"""torchvision's RoIAlign kernels, run over chunks of RoIs in parallel threads on the CPU.

torchvision's CPU roi_align and its backward loop over RoIs on one thread, so on a multi-core CPU
they leave all but one core idle; in Faster R-CNN they are a fifth of inference and of a training
step. The kernels release the GIL, so splitting the RoIs into one chunk per intra-op thread and
calling the same kernels from a thread pool uses every core. The forward result is bit-identical
to torchvision's (each RoI is computed by the same kernel); the backward sums the chunks' input
gradients, which only reorders float additions.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor
from torchvision.ops import roi_align

# Below this many RoIs a thread hand-off costs more than it saves.
MIN_ROIS_PER_CHUNK = 32
_pool: ThreadPoolExecutor | None = None


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool._max_workers != workers:
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detseg-roi-align")
    return _pool


def _num_chunks(features: Tensor, rois: Tensor) -> int:
    # float32 only: other dtypes take torchvision's own path with its autocast and dtype handling
    if features.device.type != "cpu" or features.dtype != torch.float32 or torch.jit.is_tracing():
        return 1
    return max(1, min(torch.get_num_threads(), len(rois) // MIN_ROIS_PER_CHUNK))


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
        return sum(grads[1:], grads[0]), None, None, None, None, None, None


def threaded_roi_align(features: Tensor, rois: Tensor, output_size: int, spatial_scale: float,
                       sampling_ratio: int, aligned: bool = False) -> Tensor:
    """``torchvision.ops.roi_align`` on [K, 5] (image index, x1, y1, x2, y2) RoIs, threaded on the CPU."""
    chunks = _num_chunks(features, rois)
    if chunks == 1:
        return roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)
    return _ChunkedRoIAlign.apply(features, rois.to(features.dtype), spatial_scale, output_size, sampling_ratio,
                                  aligned, chunks)

"""float32 linear layers on the CPU through oneDNN where torch's own path is the slower one.

torch's float32 linear on the CPU is a BLAS sgemm, MKL in the official wheels, and MKL takes its fast
kernels on Intel CPUs only. On this project's AMD EPYC (2 cores, AVX-512) MKL multiplies the R-CNN box
head's first layer (1024 RoIs, 12544 -> 1024) in 119 ms, oneDNN (which runs torch's convolutions) in 57 ms,
and each of the backward's two products in about 70 ms: a fp32 Faster R-CNN R50-FPN training step spent
450 ms in MKL's matmuls. oneDNN's float32 linear computes in float32 (no reduced-precision shortcut), its
sums in another order: results agree with torch's to float rounding.

Taken only for float32 outside autocast (bf16 autocast already runs in oneDNN), on non-Intel CPUs with MKL
(utils.cpu.onednn_matmul_is_faster), for products large enough that oneDNN's call overhead (about 15 us)
does not outweigh the gain, and never while a graph is captured (exporters and compilers see the plain
linear op).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils import flop_counter

from detseg.models.layers.call_context import autocast_dtype, capturing_graph
from detseg.utils.cpu import onednn_matmul_is_faster

# Products below this many multiply-adds stay with torch's linear: 2 x 1024 -> 1470 (3 M) took 0.15 ms in
# oneDNN against 0.14 in MKL, 1024 x 1024 -> 81 (85 M) 0.55 against 0.91
MIN_MULTIPLY_ADDS = 1 << 23


@lru_cache(maxsize=1)
def _onednn_linear_available() -> bool:
    # torch's own oneDNN linear op (what inductor emits for CPU linears), present since torch 2.0
    return hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _linear_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    """2 per multiply-add, as FlopCounterMode counts torch's linear (model summaries, the overhead
    benchmark): each output element sums over x's last dimension (true of the op's binary overload too)."""
    return 2 * math.prod(out_shape) * x_shape[-1]


def _count_flops_of_onednn_linear() -> None:
    if not _onednn_linear_available():
        return
    op = torch.ops.mkldnn._linear_pointwise
    if op not in flop_counter.flop_registry:  # a later torch may count it itself
        flop_counter.register_flop_formula(op)(_linear_flops)


_count_flops_of_onednn_linear()


def _onednn(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [None], "")


class _OneDnnLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        return _onednn(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad
        grad_x = _onednn(grad, weight.t(), None) if need_x else None  # grad @ weight
        grad_weight = _onednn(grad.t(), x.t(), None) if need_weight else None  # grad^T @ x
        grad_bias = grad.sum(0) if need_bias else None  # False for a None bias
        return grad_x, grad_weight, grad_bias


def _through_onednn(x: Tensor, weight: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.dim() == 2 and x.shape[0] * weight.shape[0] * weight.shape[1] >= MIN_MULTIPLY_ADDS
            and autocast_dtype("cpu") is None and not capturing_graph()
            and onednn_matmul_is_faster() and _onednn_linear_available())


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN where that is faster (see the module's note)."""
    if _through_onednn(x, weight):
        return _OneDnnLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)

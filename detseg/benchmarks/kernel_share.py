"""How much of a step is convolution and matrix-multiply kernels: the floor under any implementation of the
same model at the same precision.

detseg and torchvision build the same layers and, at the same precision and memory format, mostly call the
same kernels for them, so the time those kernels take is common to both; only the rest (norm layers,
activations, RoIAlign, NMS, box coding, Python) can differ. Where detseg calls other kernels (channels_last
in fp32, oneDNN's linear where torchvision's goes to MKL), its own kernel time gives the second floor. If
torchvision spends a share ``s`` of its step in them, no implementation with those kernels trains faster
than ``1 / s`` times torchvision or answers in less than ``s`` of its latency. The profiler's own cost
falls on the many small calls outside the kernels, so ``s`` is measured low and the bound is generous to
detseg.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

from torch.profiler import ProfilerActivity, profile

# aten ops that are convolution or matrix-multiply kernels (forward and backward); the rest is "other"
KERNEL_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward",
              "aten::_slow_conv2d_backward", "aten::mm", "aten::addmm", "aten::bmm",
              "aten::_mkldnn_convolution", "aten::miopen_convolution", "aten::cudnn_convolution",
              "aten::_convolution_pointwise", "mkldnn::_convolution_pointwise",
              "mkldnn::_linear_pointwise")  # detseg's float32 linear on non-Intel CPUs (models.layers.cpu_linear)


def is_kernel(op: str) -> bool:
    return op in KERNEL_OPS


def kernel_share(fn: Callable[[], object], calls: int = 2) -> dict:
    """Profile ``calls`` calls of ``fn`` (already warmed up): ms per call in the kernels and in all ops
    (self times, so nothing counts twice) and the kernels' share."""
    with _stderr_silenced():  # Kineto's start/stop notes, written from C++ straight to the descriptor
        prof = profile(activities=[ProfilerActivity.CPU])
        prof.start()
    try:
        for _ in range(calls):
            fn()
    finally:
        with _stderr_silenced():
            prof.stop()
    events = prof.key_averages()  # self times: each microsecond of the calls counted once
    total = sum(e.self_cpu_time_total for e in events)
    kernels = sum(e.self_cpu_time_total for e in events if is_kernel(e.key))
    return {"kernel_ms": kernels / 1000 / calls, "total_ms": total / 1000 / calls,
            "share": kernels / total if total else float("nan")}


@contextlib.contextmanager
def _stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def bounds(torchvision_train: dict, torchvision_infer: dict) -> dict:
    """The best ratios any implementation with torchvision's kernels can reach: training speed at most
    1 / share, latency at least share."""
    return {"train_ratio_max": 1 / torchvision_train["share"], "latency_ratio_min": torchvision_infer["share"]}


def own_kernel_bounds(torchvision_step_ms: float, torchvision_latency_ms: float, detseg_train: dict,
                      detseg_infer: dict) -> dict:
    """The best ratios detseg can reach with the kernels it runs (where they differ from torchvision's, e.g.
    channels-last against NCHW in fp32): torchvision's timed step or prediction against detseg's profiled
    kernel time alone, as if everything else in detseg's step took no time."""
    return {"train_ratio_max": torchvision_step_ms / detseg_train["kernel_ms"],
            "latency_ratio_min": detseg_infer["kernel_ms"] / torchvision_latency_ms}

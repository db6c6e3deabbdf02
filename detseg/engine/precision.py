"""Mixed precision and memory format, decided once per run from ``train.amp`` and ``train.channels_last``.

"auto" (the default for both) turns them on where they pay. On CUDA: autocast to bf16 (fp16 where the GPU
has no bf16) and channels_last tensors, which tensor cores want. On a CPU that multiplies bf16 in hardware
(AVX512-BF16 or AMX): bf16 autocast with channels_last, which oneDNN runs about twice as fast as fp32
(ResNet-50 at 512 px on 2 EPYC cores: 337 -> 146 ms; the shapes Faster R-CNN trains 1.3x faster to the same
AP). Other CPUs emulate bf16, slower than fp32, so "auto" stays fp32 on them. In fp32, "auto" picks
channels_last on a CPU with AVX-512, where oneDNN's fp32 convolutions prefer it (2 EPYC cores, torch 2.14:
Faster R-CNN R50-FPN step 3.0 -> 2.7 s, prediction 588 -> 535 ms, SSD300 prediction 285 -> 226 ms; the same
with AVX-512 but no bf16 emulated by ONEDNN_MAX_CPU_ISA=AVX512_CORE), and not below it (AVX2: the Faster
R-CNN step 4.4 -> 4.9 s). ``train.amp: false`` forces fp32 everywhere. The same settings apply to
evaluation and inference of that config.
"""
from __future__ import annotations

import contextlib

import torch

from detseg.utils.cpu import has_avx512, has_native_bf16
from torch import nn

_NAMED = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 dot products in hardware (the avx512_bf16 or amx_bf16 flag, Linux) that
    oneDNN may use (ONEDNN_MAX_CPU_ISA can forbid them)."""
    return has_native_bf16()


def amp_dtype(setting: bool | str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype ``train.amp`` asks for on ``device``, or None for full precision."""
    device = torch.device(device)
    if setting is False or setting == "off":
        return None
    if setting == "auto" and not (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())):
        return None
    if setting is True or setting == "auto":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if setting in _NAMED:
        return _NAMED[setting]
    raise ValueError(f"train.amp must be auto, true, false, bf16 or fp16, got {setting!r}")


def dtype_name(train_cfg, device: torch.device | str) -> str:
    """What the config computes in on ``device``, for reports: "bfloat16", "float16" or "float32"."""
    return str(amp_dtype(train_cfg.amp, device) or torch.float32).removeprefix("torch.")


def cpu_has_avx512() -> bool:
    """Whether this CPU has AVX-512 that oneDNN may use (ONEDNN_MAX_CPU_ISA can forbid it)."""
    return has_avx512()


def use_channels_last(setting: bool | str, device: torch.device | str, amp: bool | str = "auto") -> bool:
    """``amp``: the run's ``train.amp``. On the CPU "auto" means channels_last in bf16, and in fp32 where the
    CPU has AVX-512 (see the module's note)."""
    device = torch.device(device)
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        if device.type != "cpu":
            return device.type == "cuda"
        return amp_dtype(amp, device) == torch.bfloat16 or cpu_has_avx512()
    raise ValueError(f"train.channels_last must be auto, true or false, got {setting!r}")


def prepare_model(model: nn.Module, train_cfg, device: torch.device | str) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format the config asks for. Convolutions follow
    their weights' format, so converting the parameters is enough for the activations to follow."""
    model.to(device)
    if use_channels_last(train_cfg.channels_last, device, train_cfg.amp):
        model.to(memory_format=torch.channels_last)
    return model


def autocast(train_cfg, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context of ``train.amp`` on ``device`` (a no-op context for full precision)."""
    dtype = amp_dtype(train_cfg.amp, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)

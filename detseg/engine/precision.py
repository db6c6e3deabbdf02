"""Mixed precision and memory format, decided once per run from ``train.amp`` and ``train.channels_last``.

"auto" (the default for both) turns them on where they pay: on CUDA, autocast to bf16 (fp16 where the GPU
has no bf16) and channels_last tensors, which tensor cores want. On the CPU "auto" leaves both off: fp32
is what CPU users compare against, and bf16 is opt-in (``train.amp: bf16`` or ``true``) for CPUs with
bf16 instructions. The same settings apply to evaluation and inference of that config.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

_NAMED = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(setting: bool | str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype ``train.amp`` asks for on ``device``, or None for full precision."""
    device = torch.device(device)
    if setting is False or setting == "off":
        return None
    if setting == "auto" and device.type != "cuda":
        return None
    if setting is True or setting == "auto":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if setting in _NAMED:
        return _NAMED[setting]
    raise ValueError(f"train.amp must be auto, true, false, bf16 or fp16, got {setting!r}")


def use_channels_last(setting: bool | str, device: torch.device | str) -> bool:
    device = torch.device(device)
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return device.type == "cuda"
    raise ValueError(f"train.channels_last must be auto, true or false, got {setting!r}")


def prepare_model(model: nn.Module, train_cfg, device: torch.device | str) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format the config asks for. Convolutions follow
    their weights' format, so converting the parameters is enough for the activations to follow."""
    model.to(device)
    if use_channels_last(train_cfg.channels_last, device):
        model.to(memory_format=torch.channels_last)
    return model


def autocast(train_cfg, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context of ``train.amp`` on ``device`` (a no-op context for full precision)."""
    dtype = amp_dtype(train_cfg.amp, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)

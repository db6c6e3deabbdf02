"""What kind of call a layer is in: a captured graph (traced, scripted, compiled) or an autocast."""
from __future__ import annotations

import torch


def capturing_graph() -> bool:
    """Whether this call is being traced, scripted or compiled: then ops must stay ops (no kept tensors,
    no thread pools, no private kernels), the graph is what is wanted."""
    compiler = getattr(torch, "compiler", None)
    compiling = compiler is not None and compiler.is_compiling()
    return bool(compiling or torch.jit.is_tracing() or torch.jit.is_scripting())


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype an autocast on ``device_type`` casts to, None when none is on."""
    if device_type not in ("cpu", "cuda"):
        return None
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        on = torch.is_autocast_enabled(device_type)
        return torch.get_autocast_dtype(device_type) if on else None
    if device_type == "cpu":  # the per-device functions torch 2.4 deprecated
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None

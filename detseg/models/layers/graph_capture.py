"""Whether the current call is being traced, scripted or compiled."""
from __future__ import annotations

import torch


def capturing_graph() -> bool:
    """Whether this call is being traced, scripted or compiled: then ops must stay ops (no kept tensors,
    no thread pools, no private kernels), the graph is what is wanted."""
    compiler = getattr(torch, "compiler", None)
    compiling = compiler is not None and compiler.is_compiling()
    return bool(compiling or torch.jit.is_tracing() or torch.jit.is_scripting())

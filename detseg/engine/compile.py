"""Optional ``torch.compile`` of a trained model's dense parts for inference (``test.compile``).

On the CPU the gain comes from inductor's *freezing*: weights become constants, so convolution
weights are re-laid out for oneDNN once instead of at every call and the folded BatchNorm, bias,
ReLU and residual add fuse into the convolution. That roughly halves the backbone + FPN time on a
2-core CPU (see the README's performance section). Freezing assumes the weights never change again,
so it is only for models that are done training (the trainer never compiles its evaluation model).

Each submodule's ``forward`` is replaced on the instance: module names, state dicts and checkpoints
stay unchanged (``nn.Module.compile`` would do the same but takes no per-call inductor config).
Compiled training was measured too and left out: the convolution backward kernels are the same
oneDNN ones, and the compile took minutes for no gain.
"""
from __future__ import annotations

import functools

import torch
from torch import nn

# Parts whose forward maps tensors to tensors; detection logic (anchors, NMS, sampling) stays eager.
INFERENCE_PARTS = ("backbone", "neck", "proposal_generator.head", "roi_heads.box_head", "roi_heads.mask_head")


def compile_for_inference(model: nn.Module, parts: tuple[str, ...] = INFERENCE_PARTS) -> list[str]:
    """Compile ``parts`` of ``model`` (those it has) in place; returns the names compiled."""
    compiled = []
    for name in parts:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        if module is None or not any(True for _ in module.parameters()):
            continue
        module.forward = _frozen(torch.compile(module.forward, dynamic=False))
        compiled.append(name)
    return compiled


def _frozen(compiled_forward):
    @functools.wraps(compiled_forward)
    def forward(*args, **kwargs):
        # the config is read when a new input shape compiles, so it is set around every call
        with torch._inductor.config.patch(freezing=not torch.is_grad_enabled()):
            return compiled_forward(*args, **kwargs)
    return forward

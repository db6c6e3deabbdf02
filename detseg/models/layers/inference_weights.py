"""Weights as an inference call uses them, made once and kept until they change.

Under a bf16 autocast every convolution and linear layer casts its fp32 weight at each call (autocast
keeps its casts only until the outermost autocast block exits, i.e. one batch), and a folded BatchNorm
(detseg.models.backbones.folded_norm) multiplies its convolution's weight at each call: for Faster
R-CNN R50-FPN on the CPU some 45 ms of a 310 ms prediction, redone for every image with the same
result. In inference (no gradient) those tensors are kept on their module beside a key of what they
were made from (each source's storage and version counter, the autocast dtype), so a change of
weights (an optimizer step, a loaded state dict, a move to another device) makes them again.

Training, tracing (ONNX export) and torch.compile take the plain path: they need the graph of the
computation, not its result.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from detseg.models.layers import cpu_linear
from detseg.models.layers.call_context import autocast_dtype, capturing_graph


_keeping = True


@contextlib.contextmanager
def made_at_each_call() -> Iterator[None]:
    """Inside this block inference makes its weights at every call, as training does (the reference
    the kept weights are tested against, and a way to rule them out when chasing a difference)."""
    global _keeping
    before, _keeping = _keeping, False
    try:
        yield
    finally:
        _keeping = before


def _cast(tensor: Tensor | None, dtype: torch.dtype | None) -> Tensor | None:
    if tensor is None or dtype is None or not tensor.is_floating_point():
        return tensor
    return tensor.to(dtype)  # the cast autocast makes (same rounding, same memory format)


def inference_weights(module: nn.Module, slot: str, make: Callable[[], tuple[Tensor | None, ...]],
                      sources: tuple[Tensor | None, ...]) -> tuple[Tensor | None, ...]:
    """``make()`` (a conv or linear layer's weight and bias), in the autocast dtype when one is on; in
    inference kept in ``module``'s ``slot`` while ``sources`` are unchanged."""
    if not _keeping or torch.is_grad_enabled() or capturing_graph():
        return make()
    present = [t for t in sources if t is not None]
    dtype = autocast_dtype(present[0].device.type)
    key = (dtype, tuple((t.data_ptr(), t.device, t.dtype, t._version) for t in present))
    cache = module.__dict__.setdefault("_inference_weights", {})
    kept = cache.get(slot)
    if kept is not None and kept[0] == key:
        return kept[1]
    tensors = tuple(_cast(t, dtype) for t in make())
    cache[slot] = (key, tensors)
    return tensors


class _DropsKeptWeightsInTraining:
    """Back in training mode the kept tensors are dropped: a training run evaluating every epoch would
    otherwise hold a stale bf16 copy of the model between evaluations."""

    def train(self, mode: bool = True):
        if mode:
            self.__dict__.pop("_inference_weights", None)
        return super().train(mode)


class InferenceConv2d(_DropsKeptWeightsInTraining, nn.Conv2d):
    """nn.Conv2d whose inference keeps its autocast-cast weights (same parameters and state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = inference_weights(self, "conv", lambda: (self.weight, self.bias), (self.weight, self.bias))
        return self._conv_forward(x, weight, bias)


class InferenceLinear(_DropsKeptWeightsInTraining, nn.Linear):
    """nn.Linear whose inference keeps its autocast-cast weights (same parameters and state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = inference_weights(self, "linear", lambda: (self.weight, self.bias), (self.weight, self.bias))
        return cpu_linear.linear(x, weight, bias)


_KEPT = {nn.Conv2d: InferenceConv2d, nn.Linear: InferenceLinear}


def keep_inference_weights(model: nn.Module) -> nn.Module:
    """Give every plain nn.Conv2d and nn.Linear of ``model`` the keeping forward, in place: only the
    class changes, so parameters, state dicts and isinstance checks stay as they were."""
    for module in model.modules():
        kept = _KEPT.get(type(module))
        if kept is not None:
            module.__class__ = kept
    return model

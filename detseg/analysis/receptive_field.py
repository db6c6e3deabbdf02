"""Theoretical receptive fields, followed through the ops a forward pass really runs.

Along a chain of layers the textbook recurrence holds, per axis::

    r_out = r_in + (k - 1) * dilation * j_in        j_out = j_in * stride

(r: receptive field side in input pixels, j: the "jump", input pixels between neighbouring outputs;
the input has r = j = 1). Padding moves a field but does not change its size.

Networks are graphs, not chains, so ``ReceptiveFieldTracker`` runs the model under a dispatch mode and
attaches a field to every tensor computed from the input, op by op:

- convolutions and pools apply the recurrence (a transposed conv of stride s divides the jump by s and
  adds ``floor((k - 1) * dilation / s)`` input steps); upsampling divides the jump by its factor
  (bilinear/bicubic also reach 1/3 more input steps); padding and slicing keep the field;
- a global pool or a mean over both spatial axes gives the whole input (``math.inf``);
- an op joining several tensors (a residual add, a concatenation of branches, a gate) takes the
  **largest** field over its inputs, and the finest jump: the theoretical field of a residual block is
  its longest branch (the identity path never widens it), and after a squeeze-and-excitation gate
  (MobileNetV3) every output depends on the whole input;
- any other op that keeps the last two (spatial) axes is treated as pointwise (activations, norms,
  LRN, dropout); flattening to a vector leaves no spatial field, but an fc layer reading that vector
  sees the whole input; an op that changes the spatial axes in a way not listed above (RoIAlign, a
  reshape back to a map) leaves its outputs without a field.

This is the *theoretical* field: the effective one (where gradients really come from) is much smaller.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakTensorKeyDictionary


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[float, float]  # (height, width) in input pixels; math.inf: the whole input
    jump: tuple[float, float]  # input pixels between neighbouring outputs, i.e. the cumulative stride

    def then(self, kernel, stride=1, dilation=1) -> "ReceptiveField":
        """The field after one layer of this kernel, stride and dilation (ints or (h, w) pairs)."""
        k, s, d = _pair(kernel), _pair(stride), _pair(dilation)
        size = tuple(r + (k[i] - 1) * d[i] * self.jump[i] for i, r in enumerate(self.size))
        return ReceptiveField(size, tuple(j * s[i] for i, j in enumerate(self.jump)))

    def side(self) -> float | None:
        """One number where the field is square (the usual case), else None."""
        return self.size[0] if self.size[0] == self.size[1] else None


INPUT = ReceptiveField((1, 1), (1, 1))
UNKNOWN = object()  # computed from the input through an op that has no spatial meaning here
FLAT = object()  # a field flattened into a vector (the input of an fc layer): its reader sees everything
_MATMULS = ("addmm", "mm", "bmm", "baddbmm", "linear", "matmul")


def chain(layers) -> ReceptiveField:
    """The recurrence along a chain of ``(kernel, stride, dilation)`` layers, from a single pixel."""
    field = INPUT
    for kernel, stride, dilation in layers:
        field = field.then(kernel, stride, dilation)
    return field


class ReceptiveFieldTracker(TorchDispatchMode):
    """``with tracker: model(x)`` after ``tracker.mark_input(x)``; then ``tracker.field(t)`` for any tensor."""

    def __init__(self):
        super().__init__()
        self._fields = WeakTensorKeyDictionary()

    def mark_input(self, tensor: Tensor) -> None:
        self._fields[tensor] = INPUT

    def field(self, tensor) -> ReceptiveField | None:
        found = self._fields.get(tensor) if isinstance(tensor, Tensor) else None
        return found if isinstance(found, ReceptiveField) else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tracked = [t for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor) and t in self._fields]
        if tracked:
            for result in (t for t in tree_leaves(out) if isinstance(t, Tensor)):
                self._fields[result] = _propagate(func, args, [self._fields[t] for t in tracked], tracked, result)
        return out


def _propagate(func, args, fields, tracked: list[Tensor], out: Tensor):
    if any(f is UNKNOWN for f in fields):
        return UNKNOWN
    name = func.overloadpacket.__name__
    if name in _MATMULS:  # every output of an fc layer reads every element of its input vector
        return ReceptiveField((math.inf, math.inf), (math.inf, math.inf))
    if any(f is FLAT for f in fields):
        return FLAT
    source = fields[0] if args and tracked[0] is args[0] else None
    if source is not None and out.dim() >= 3:
        spatial = _spatial_rule(name, args, source, out)
        if spatial is not None:
            return spatial
    return _pointwise(fields, tracked, out)


def _spatial_rule(name: str, args, field: ReceptiveField, out: Tensor):
    """The ops that move or widen a field; None for every other op."""
    if name == "convolution" and args[1].dim() == 4:
        kernel, stride, dilation, transposed = args[1].shape[2:], args[3], args[5], args[6]
        return _transposed(field, kernel, stride, dilation) if transposed else field.then(kernel, stride, dilation)
    if name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
        kernel = args[1]
        stride = args[2] if len(args) > 2 and args[2] else kernel
        dilation = args[4] if name != "avg_pool2d" and len(args) > 4 else 1
        return field.then(kernel, stride, dilation)
    if name in ("_adaptive_avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"):
        return _adaptive(field, args[0].shape[-2:], out.shape[-2:])
    if name in ("mean", "sum", "amax", "amin") and _reduces_spatial(args):
        return _whole_input(field, args[0].shape[-2:])
    if name.startswith(("upsample_", "_upsample_")):
        reach = 1 if "bilinear" in name else 3 if "bicubic" in name else 0  # extra input steps interpolated
        return _resampled(field, args[0].shape[-2:], out.shape[-2:], reach)
    if name in ("constant_pad_nd", "reflection_pad2d", "replication_pad2d", "slice"):
        return field
    return None


def _pointwise(fields, tracked: list[Tensor], out: Tensor):
    """Joins and elementwise ops: the largest field, the finest jump; UNKNOWN if the spatial axes changed."""
    size = tuple(max(f.size[i] for f in fields) for i in range(2))
    if all(math.isinf(s) for s in size):
        return ReceptiveField(size, tuple(min(f.jump[i] for f in fields) for i in range(2)))
    spatial = [t for t, f in zip(tracked, fields) if not math.isinf(f.size[0])]
    if out.dim() < 3:
        return FLAT
    if any(t.dim() < 3 or t.shape[-2:] != out.shape[-2:] for t in spatial):
        return UNKNOWN
    return ReceptiveField(size, tuple(min(f.jump[i] for f in fields) for i in range(2)))


def _transposed(field: ReceptiveField, kernel, stride, dilation) -> ReceptiveField:
    k, s, d = _pair(kernel), _pair(stride), _pair(dilation)
    size = tuple(field.size[i] + ((k[i] - 1) * d[i] // s[i]) * field.jump[i] for i in range(2))
    return ReceptiveField(size, tuple(field.jump[i] / s[i] for i in range(2)))


def _adaptive(field: ReceptiveField, in_hw, out_hw) -> ReceptiveField:
    """torchvision-style adaptive bins: bin i covers [floor(i * n / m), ceil((i + 1) * n / m))."""
    if tuple(out_hw) == (1, 1):
        return _whole_input(field, in_hw)
    size, jump = [], []
    for axis, (n, m) in enumerate(zip(in_hw, out_hw)):
        widest = max(math.ceil((i + 1) * n / m) - (i * n) // m for i in range(m))
        size.append(field.size[axis] + (widest - 1) * field.jump[axis])
        jump.append(field.jump[axis] * n / m)
    return ReceptiveField(tuple(size), tuple(jump))


def _resampled(field: ReceptiveField, in_hw, out_hw, reach: int) -> ReceptiveField:
    size = tuple(field.size[i] + reach * field.jump[i] for i in range(2))
    return ReceptiveField(size, tuple(field.jump[i] * in_hw[i] / out_hw[i] for i in range(2)))


def _whole_input(field: ReceptiveField, in_hw) -> ReceptiveField:
    return ReceptiveField((math.inf, math.inf), tuple(field.jump[i] * in_hw[i] for i in range(2)))


def _reduces_spatial(args) -> bool:
    if len(args) < 2 or not isinstance(args[1], (list, tuple)):
        return False
    ndim = args[0].dim()
    return {d % ndim for d in args[1]} >= {ndim - 2, ndim - 1}


def _pair(value) -> tuple:
    if isinstance(value, torch.Size) or isinstance(value, (list, tuple)):
        return tuple(value) if len(value) == 2 else (value[0], value[0])
    return (value, value)

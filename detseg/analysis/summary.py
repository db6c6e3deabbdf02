"""Per-layer anatomy of a model: output shape, parameters, FLOPs and receptive field of every layer.

``summarize(model, example)`` runs one forward pass (a Tensor as is, a ``Batch`` in predict mode) with
``torch.utils.flop_counter.FlopCounterMode`` counting FLOPs per module (2 per multiply-accumulate of
convolutions and matrix products; pools, norms and activations count 0, as in the papers' figures)
and ``ReceptiveFieldTracker`` following the theoretical receptive field of every tensor.

Rows are the modules at ``max_depth`` (or the leaves above it; None: all leaves), plus an "(own)"
row for a module above them that runs ops or holds parameters itself, so that the rows add up to the
totals. A module whose parent uses its weights without calling it (the folded-BatchNorm ResNet
blocks at inference call ``F.conv2d`` on conv and BN weights) shows no output and no FLOPs: they are
on the parent's "(own)" row. A module called several times (an RPN head shared by the FPN levels)
shows its first call's output and the FLOPs of all its calls. The backbone's outputs (the
maps its ``output_spec`` describes) get a section of their own, with fields measured from the
backbone's input.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from detseg.analysis.receptive_field import ReceptiveField, ReceptiveFieldTracker
from detseg.models.backbones.base import Backbone
from detseg.models.backbones.folded_norm import unfolded_norms
from detseg.structures import Batch


@dataclass
class LayerRow:
    name: str
    type: str
    output: object = None  # shape list, or a nest of them for tuple/dict outputs; None: never called
    calls: int = 0
    params: int = 0
    flops: int = 0
    receptive_field: float | list[float] | None = None  # side in input pixels (inf: whole input)
    stride: float | list[float] | None = None  # jump: input pixels between neighbouring outputs


@dataclass
class FeatureRow:
    name: str  # the output_spec key, e.g. "s16"
    channels: int
    stride: int  # from output_spec
    shape: list[int]
    receptive_field: float | list[float] | None
    rf_stride: float | list[float] | None  # the stride the tracker measured; equals ``stride``


@dataclass
class Summary:
    input_shape: list[int]
    rows: list[LayerRow]
    features: list[FeatureRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_flops: int = 0

    def row(self, name: str) -> LayerRow:
        return next(r for r in self.rows if r.name == name)

    def to_dict(self) -> dict:
        return _json_safe(asdict(self))


def summarize(model: nn.Module, example: Tensor | Batch, max_depth: int | None = None) -> Summary:
    tracker, calls = ReceptiveFieldTracker(), {}
    handles = [m.register_forward_hook(_recorder(calls, n, tracker)) for n, m in model.named_modules()]
    backbone = next((m for m in model.modules() if isinstance(m, Backbone)), None)
    if backbone is not None:  # fields of the backbone's maps are in backbone-input pixels
        handles.append(backbone.register_forward_pre_hook(lambda m, args: tracker.mark_input(args[0])))
        handles.append(backbone.register_forward_hook(_feature_recorder(calls, backbone, tracker)))
    images = example.images if isinstance(example, Batch) else example
    tracker.mark_input(images)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        # unfolded: each convolution and norm is its own row, as the architecture defines them
        with torch.no_grad(), unfolded_norms(), FlopCounterMode(display=False) as counter, tracker:
            model(example, mode="predict") if isinstance(example, Batch) else model(example)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)
    flops = _flops_by_module(counter, type(model).__name__)
    rows = [_row(name, module, calls.get(name), _own_flops(name, module, flops) if own else flops.get(name, 0), own)
            for name, module, own in _selected_modules(model, max_depth, flops)]
    params = {id(p): p for p in model.parameters()}.values()
    return Summary(
        input_shape=list(images.shape), rows=rows, features=calls.get(_FEATURES, []),
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_flops=counter.get_total_flops(),
    )


def _selected_modules(model: nn.Module, max_depth: int | None, flops: dict[str, int]):
    """``(name, module, own)``: the frontier at ``max_depth`` (modules at that depth plus shallower leaves)
    with ``own`` False, and, with ``own`` True, each module above it that computes or holds something
    itself (a block that calls its convs' weights functionally), so that the rows add up to the totals."""
    for name, module in model.named_modules():
        depth = name.count(".") + 1 if name else 0
        is_leaf = next(module.children(), None) is None
        if depth == max_depth or (is_leaf and (max_depth is None or depth < max_depth)):
            yield name, module, False
        elif max_depth is None or depth < max_depth:
            if _own_flops(name, module, flops) > 0 or next(module.parameters(recurse=False), None) is not None:
                yield name, module, True


def _own_flops(name: str, module: nn.Module, flops: dict[str, int]) -> int:
    return max(0, flops.get(name, 0) - _counted_below(name, module, flops))


def _counted_below(name: str, module: nn.Module, flops: dict[str, int]) -> int:
    """FLOPs of the nearest counted descendants (a ModuleList is never called: look through it)."""
    total = 0
    for child_name, child in module.named_children():
        path = f"{name}.{child_name}" if name else child_name
        total += flops[path] if path in flops else _counted_below(path, child, flops)
    return total


_FEATURES = object()  # key of the backbone's feature rows among the recorded calls


def _recorder(calls: dict, name: str, tracker: ReceptiveFieldTracker):
    """Keep the first call's output shapes and field (not the tensors: all of them would fill the memory)."""
    def hook(module, args, output):
        if name in calls:
            calls[name]["calls"] += 1
        else:
            rf, jump = _field_numbers(tracker.field(output))
            calls[name] = {"output": describe(output), "calls": 1, "receptive_field": rf, "stride": jump}
    return hook


def _feature_recorder(calls: dict, backbone: Backbone, tracker: ReceptiveFieldTracker):
    def hook(module, args, outputs):
        if _FEATURES not in calls:  # the maps this model computes (compute_only may stop early)
            calls[_FEATURES] = [FeatureRow(key, spec.channels, spec.stride, describe(outputs[key]),
                                           *_field_numbers(tracker.field(outputs[key])))
                                for key, spec in backbone.output_spec().items() if key in outputs]
    return hook


def _row(name: str, module: nn.Module, call: dict | None, flops: int, own: bool) -> LayerRow:
    row = LayerRow(name=name or "(model)", type=type(module).__name__, flops=flops,
                   params=sum(p.numel() for p in module.parameters()), **(call or {}))
    if own:
        row.type += " (own)"
        row.params = sum(p.numel() for p in module.parameters(recurse=False))
    return row


def _field_numbers(rf: ReceptiveField | None):
    if rf is None:
        return None, None
    return _square(rf.size), _square(rf.jump)


def _square(pair):
    value = pair[0] if pair[0] == pair[1] else list(pair)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _flops_by_module(counter: FlopCounterMode, root: str) -> dict[str, int]:
    """FlopCounterMode names modules "<RootClass>.<path>"; map them back to ``named_modules`` paths."""
    out = {}
    for name, by_op in counter.get_flop_counts().items():
        if name == root or name.startswith(root + "."):
            out[name[len(root) + 1:]] = sum(by_op.values())
    return out


def describe(output):
    """Shapes of a module's output: a list for a tensor, the same nest for tuples, lists and dicts."""
    if isinstance(output, Tensor):
        return list(output.shape)
    if isinstance(output, (list, tuple)):
        return [describe(o) for o in output]
    if isinstance(output, dict):
        return {str(k): describe(v) for k, v in output.items()}
    return output if isinstance(output, (str, int, float, bool)) else type(output).__name__


def _json_safe(value):
    if isinstance(value, float) and math.isinf(value):
        return "global"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value

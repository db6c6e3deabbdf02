"""Text table of a ``Summary``: one line per layer, the backbone's maps, then the totals."""
from __future__ import annotations

import math

from detseg.analysis.summary import Summary

_MAX_NAME = 48
_MAX_TYPE = 24
_MAX_SHAPE = 28


def format_summary(summary: Summary) -> str:
    lines = [f"input {_shape(summary.input_shape)}", "", *_layer_lines(summary)]
    if summary.features:
        lines += ["", "backbone outputs (receptive field in backbone-input pixels)",
                  f"{'key':<6} {'channels':>8} {'stride':>7} {'RF':>7}  shape"]
        lines += [f"{f.name:<6} {f.channels:>8} {f.stride:>7} {_number(f.receptive_field):>7}  {_shape(f.shape)}"
                  for f in summary.features]
    lines += ["", f"total params      {summary.total_params:>15,}",
              f"trainable params  {summary.trainable_params:>15,}",
              f"GFLOPs            {summary.total_flops / 1e9:>15.3f}   (FlopCounterMode: 2 per multiply-add)"]
    return "\n".join(lines)


def _layer_lines(summary: Summary) -> list[str]:
    shapes = [_shape(r.output) + (f" x{r.calls}" if r.calls > 1 else "") for r in summary.rows]
    name_w = min(_MAX_NAME, max([5] + [len(r.name) for r in summary.rows]))
    type_w = min(_MAX_TYPE, max([4] + [len(r.type) for r in summary.rows]))
    shape_w = min(_MAX_SHAPE, max([6] + [len(s) for s in shapes]))
    total = max(summary.total_params, 1)
    header = (f"{'layer':<{name_w}}  {'type':<{type_w}}  {'output':<{shape_w}} {'params':>12} {'%':>5} "
              f"{'FLOPs':>15} {'stride':>6} {'RF':>6}")
    lines = [header, "-" * len(header)]
    for r, shape in zip(summary.rows, shapes):
        lines.append(f"{_clip(r.name, name_w):<{name_w}}  {_clip(r.type, type_w):<{type_w}}  "
                     f"{_clip(shape, shape_w, keep_start=True):<{shape_w}} {r.params:>12,} "
                     f"{100 * r.params / total:>5.1f} {r.flops:>15,} {_stride(r):>6} {_number(r.receptive_field):>6}")
    return lines


def _shape(output) -> str:
    """[1, 64, 56, 56] -> 1x64x56x56; nests keep their brackets; never run -> '-'."""
    if output is None:
        return "-"
    if isinstance(output, list) and all(isinstance(v, int) for v in output):
        return "x".join(map(str, output)) if output else "scalar"
    if isinstance(output, list):
        return "[" + ", ".join(_shape(v) for v in output) + "]"
    if isinstance(output, dict):
        return "{" + ", ".join(f"{k}: {_shape(v)}" for k, v in output.items()) + "}"
    return str(output)


def _stride(row) -> str:
    """No stride for a field that already covers the whole input."""
    global_field = isinstance(row.receptive_field, float) and math.isinf(row.receptive_field)
    return "-" if global_field else _number(row.stride)


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "x".join(_number(v) for v in value)
    if math.isinf(value):
        return "global"
    return f"{value:g}"


def _clip(text: str, width: int, keep_start: bool = False) -> str:
    """Long names keep their end (the leaf), long shapes their start (the first output)."""
    if len(text) <= width:
        return text
    return text[: width - 3] + "..." if keep_start else "..." + text[-(width - 3):]

"""Fixed-width text tables for the metric dicts the evaluators return."""
from __future__ import annotations

import math

_CLASSES_PER_ROW = 3  # per-class columns side by side keep an 80-class table short


def format_metrics_table(metrics: dict) -> str:
    """Render ``evaluate()``'s output (``{task: {name: value}}``) or one task's dict.

    Summary numbers (``AP``, ``AP50``, ... or ``mAP``) go in one table; per-class
    entries (keys ``<metric>-<class name>``) in a second one.
    """
    if metrics and all(isinstance(v, dict) for v in metrics.values()):
        return "\n\n".join(f"[{task}]\n{_task_tables(m, _fmt_loss if task == 'val_loss' else _fmt)}"
                           for task, m in metrics.items())
    return _task_tables(metrics)


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.2f}"


def _fmt_loss(value: float) -> str:
    """Loss terms are not percent: a box loss of 0.004 must not print as 0.00."""
    return f"{value:.4g}"


def _task_tables(metrics: dict, fmt=_fmt) -> str:
    summary = {k: v for k, v in metrics.items() if "-" not in k}
    widths = [max(6, len(k)) for k in summary]
    lines = [
        "  ".join(k.rjust(w) for k, w in zip(summary, widths)),
        "  ".join(fmt(v).rjust(w) for v, w in zip(summary.values(), widths)),
    ]
    per_class = _per_class_table(metrics)
    return "\n".join(lines) + ("\n\n" + per_class if per_class else "")


def _per_class_table(metrics: dict) -> str:
    columns: list[str] = []
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if "-" not in key:
            continue
        metric, name = key.split("-", 1)  # metric names have no dash; class names may
        if metric not in columns:
            columns.append(metric)
        rows.setdefault(name, {})[metric] = value
    if not rows:
        return ""
    name_w = max(8, *(len(n) for n in rows))
    col_w = max(6, *(len(c) for c in columns))
    header = "category".ljust(name_w) + "".join("  " + c.rjust(col_w) for c in columns)
    cells = [
        name.ljust(name_w) + "".join("  " + _fmt(vals.get(c, math.nan)).rjust(col_w) for c in columns)
        for name, vals in rows.items()
    ]
    per_row = min(_CLASSES_PER_ROW, len(cells))
    lines = [" | ".join([header] * per_row)]
    for i in range(0, len(cells), per_row):
        lines.append(" | ".join(cells[i : i + per_row]))
    return "\n".join(lines)


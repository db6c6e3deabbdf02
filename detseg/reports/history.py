"""A run's metrics.jsonl (written by detseg.engine.metrics.MetricsWriter) as plottable series.

Records are ``{"type": "train", "iter", "lr", "loss", "loss_<head>_<term>", ...}`` per log period and
``{"type": "eval", "iter", "<task>": {...}, "val_loss": {...}}`` per evaluation. A resumed run appends
and may log an iteration again; the record written last wins.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

Series = tuple[list[float], list[float]]  # (iterations, values)

VAL_LOSS = "val_loss"  # the eval record's block of validation losses (see detseg.evaluation.val_loss)
# Per task, the evaluation numbers worth a line; a task with none of these gets all its summary numbers.
HEADLINE = ("AP", "AP50", "AP75", "mAP", "mIoU")


def read_history(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(train records, eval records), each sorted by iteration, one per iteration.

    A line that is not JSON (a run killed mid-write) is skipped."""
    latest: dict[tuple[str, int], dict] = {}
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "iter" in record:
            latest[(record.get("type", "train"), int(record["iter"]))] = record
    by_type = {"train": [], "eval": []}
    for (kind, _), record in sorted(latest.items(), key=lambda item: item[0][1]):
        by_type.setdefault(kind, []).append(record)
    return by_type["train"], by_type["eval"]


def _series(records: list[dict], value_of) -> dict[str, Series]:
    out: dict[str, tuple[list, list]] = {}
    for record in records:
        for name, value in value_of(record).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                iters, values = out.setdefault(name, ([], []))
                iters.append(record["iter"])
                values.append(float(value))
    return out


def train_losses(train: list[dict]) -> dict[str, Series]:
    return _series(train, lambda r: {k: v for k, v in r.items() if k.startswith("loss")})


def val_losses(evals: list[dict]) -> dict[str, Series]:
    return _series(evals, lambda r: r.get(VAL_LOSS) or {})


def learning_rate(train: list[dict]) -> Series:
    return _series(train, lambda r: {"lr": r.get("lr")}).get("lr", ([], []))


def eval_metrics(evals: list[dict]) -> dict[str, Series]:
    """``"<task>/<metric>"`` series of the headline numbers (AP, AP50, AP75, mIoU, ...)."""
    return _series(evals, _headline_numbers)


def _headline_numbers(record: dict) -> dict[str, float]:
    numbers = {}
    for task, block in record.items():
        if task == VAL_LOSS or not isinstance(block, dict):
            continue
        summary = {k: v for k, v in block.items() if "-" not in k}  # "AP-<class>" entries are per class
        chosen = [k for k in HEADLINE if k in summary] or list(summary)
        numbers.update({f"{task}/{k}": summary[k] for k in chosen})
    return numbers

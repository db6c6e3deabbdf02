"""Where training numbers go: metrics.jsonl, TensorBoard and a tqdm bar (rank 0 only)."""
from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from detseg.utils import json_text

logger = logging.getLogger(__name__)


class WindowAverage:
    """Sums loss tensors on their device between log points.

    Keeping the sums as tensors avoids a GPU->CPU sync every iteration; the sync
    happens once per log period in `averages()`.
    """

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1

    def averages(self) -> dict[str, torch.Tensor]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def reset(self) -> None:
        self.sums, self.count = {}, 0


class MetricsWriter:
    """Appends JSON lines and hands each record's numbers to the loggers (TensorBoard, MLflow, ...);
    does nothing on non-main ranks. A logger has ``log_metrics(values, step, prefix)`` and ``close()``."""

    def __init__(self, output_dir: Path, enabled: bool, loggers: list | tuple = ()):
        self.enabled = enabled
        self.jsonl_path = output_dir / "metrics.jsonl"
        self.loggers = list(loggers) if enabled else []

    def write(self, record: dict[str, Any], step: int) -> None:
        if not self.enabled:
            return
        with open(self.jsonl_path, "a") as f:
            f.write(json_text.dumps(record) + "\n")
        prefix = "eval" if record.get("type") == "eval" else "train"
        values = {k: v for k, v in flatten_numbers(record).items() if k not in ("iter", "type")}
        for sink in self.loggers:
            sink.log_metrics(values, step, prefix)

    def close(self) -> None:
        for sink in self.loggers:
            sink.close()


class TensorBoardLogger:
    """Scalars under ``<run>/tb``, opened on the first record; a run without TensorBoard still trains."""

    def __init__(self, output_dir: Path):
        self.tb_dir = output_dir / "tb"
        self._tb = None

    def log_metrics(self, values: dict[str, float], step: int, prefix: str) -> None:
        writer = self._writer()
        if writer is not None:
            for key, value in values.items():
                writer.add_scalar(f"{prefix}/{key}", value, step)

    def _writer(self):
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                logger.warning("TensorBoard logging disabled: %s", exc)
                self._tb = False
                return None
            self._tb = SummaryWriter(str(self.tb_dir))
        return self._tb or None

    def close(self) -> None:
        if self._tb:
            self._tb.close()
        self._tb = None


class ProgressBar:
    """tqdm over iterations with loss terms, lr and ETA in the postfix."""

    def __init__(self, start: int, total: int, enabled: bool):
        # Redirected to a file or CI log, a redraw every 0.1 s would bury the log: redraw every 10 s.
        interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=start, disable=not enabled, dynamic_ncols=True,
                        unit="it", desc="train", mininterval=0.1 if interactive else 10.0)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_total(self, total: int) -> None:
        self.bar.total = total
        self.bar.refresh()

    def show(self, record: dict[str, Any], eta_s: float) -> None:
        # Term names without their "loss_" prefix keep the bar on one line.
        terms = {k.removeprefix("loss_"): f"{v:.4g}" for k, v in record.items() if k.startswith("loss")}
        self.bar.set_postfix({**terms, "lr": f"{record['lr']:.3g}", "eta": format_eta(eta_s)}, refresh=False)

    def write(self, message: str) -> None:
        if not self.bar.disable:
            tqdm.write(message)

    def close(self) -> None:
        self.bar.close()


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}"


def flatten_numbers(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"bbox": {"AP": 0.3}} -> {"bbox/AP": 0.3}; non-numbers are dropped."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_numbers(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def primary_metric(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """bbox AP when present, else the first number found (depth-first, in dict order); never a
    validation loss (lower is better)."""
    bbox = metrics.get("bbox")
    if isinstance(bbox, dict) and isinstance(bbox.get("AP"), (int, float)):
        return "bbox/AP", float(bbox["AP"])
    scores = {k: v for k, v in metrics.items() if k != "val_loss"}
    flat = {k: v for k, v in flatten_numbers(scores).items() if math.isfinite(v)}
    return next(iter(flat.items()), None)


LINE_KEYS = 6  # summary numbers per task in the one-line form


def format_metrics_line(metrics: dict) -> str:
    """One line for the training log: the first summary numbers of each task, e.g.
    ``bbox AP 39.4 AP50 79.8 ... | voc mAP 70.5 ... | val_loss loss 0.862 ...``; per-class numbers are left
    to metrics.json and the table tools/train.py prints at the end."""
    parts = []
    for task, values in metrics.items():
        if not isinstance(values, dict):
            continue
        summary = [(k, v) for k, v in values.items() if "-" not in k and isinstance(v, (int, float))][:LINE_KEYS]
        parts.append(f"{task} " + " ".join(f"{k} {_number(float(v), task == 'val_loss')}" for k, v in summary))
    return " | ".join(parts)


def _number(value: float, is_loss: bool) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}" if is_loss else f"{value:.1f}"  # losses are not percent: 0.004 must not print as 0.0

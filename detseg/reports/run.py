"""The files a run (or an evaluation) writes for people to read, and the plots drawn from them.

Data files (JSON, next to metrics.jsonl / checkpoints, or in the tools/eval.py folder)::

    metrics.json           the last evaluation (percent), per-class "AP-<class>" / "AP50-<class>" included
    pr_curves.json         per-class precision at 101 recall points, IoU 0.5 (detection only)
    confusion_matrix.json  matrix[predicted][true] with a background row and column (detection only)
    labels.json            training label statistics (tools/train.py)
    metrics.jsonl          training and evaluation history (detseg.engine.metrics)

``write_plots(folder)`` draws every picture whose data file is there into ``folder/plots``, so a
finished run can be re-plotted (tools/plot.py) and a task without PR curves simply has none.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from detseg.reports import history
from detseg.reports.labels import label_statistics
from detseg.utils import json_text
from detseg.utils.files import atomic_write_text

logger = logging.getLogger(__name__)

METRICS, PR_CURVES, CONFUSION, LABELS, HISTORY = (
    "metrics.json", "pr_curves.json", "confusion_matrix.json", "labels.json", "metrics.jsonl")
PLOTS_DIR = "plots"


def write_json(folder: str | Path, name: str, data) -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    # atomic: a reader (TensorBoard's neighbour, a watching script) never sees half a file
    atomic_write_text(path, json_text.dumps(data, indent=2 if name == METRICS else None))
    return path


def write_evaluation_files(folder: str | Path, metrics: dict, coco_evaluator=None) -> list[Path]:
    """metrics.json, and for detection the PR curves and confusion matrix of ``coco_evaluator`` (rank 0,
    after its ``evaluate()``)."""
    written = [write_json(folder, METRICS, metrics)]
    if coco_evaluator is not None and "bbox" in metrics:
        written.append(write_json(folder, PR_CURVES, {"bbox": coco_evaluator.pr_curves("bbox", iou=0.5)}))
        confusion = coco_evaluator.confusion()
        written.append(write_json(folder, CONFUSION, confusion.to_dict(coco_evaluator.class_names)))
    return written


def write_label_statistics(folder: str | Path, dataset) -> Path | None:
    """labels.json of a training set; nothing for a dataset without boxes (see label_statistics)."""
    stats = label_statistics(dataset)
    return write_json(folder, LABELS, stats) if stats is not None else None


def write_plots(folder: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Every plot the data files in ``folder`` allow, as PNGs in ``out_dir`` (default ``folder/plots``)."""
    from detseg.reports import plots  # matplotlib is imported only when something is drawn

    folder = Path(folder)
    out = Path(out_dir) if out_dir is not None else folder / PLOTS_DIR
    written: list[Path] = []
    if (folder / HISTORY).is_file():
        written += _history_plots(plots, folder / HISTORY, out)
    if (folder / PR_CURVES).is_file():
        for iou_type, pr in _read(folder / PR_CURVES).items():
            if pr.get("precision"):
                name = "pr_curve.png" if iou_type == "bbox" else f"pr_curve_{iou_type}.png"
                written.append(plots.plot_pr_curves(pr["recall"], pr["precision"], out / name, pr.get("iou", 0.5)))
    if (folder / CONFUSION).is_file():
        confusion = _read(folder / CONFUSION)
        written.append(plots.plot_confusion_matrix(confusion["matrix"], confusion["names"],
                                                   out / "confusion_matrix.png", normalize=False))
        written.append(plots.plot_confusion_matrix(confusion["matrix"], confusion["names"],
                                                   out / "confusion_matrix_normalized.png", normalize=True))
    if (folder / LABELS).is_file():
        written += _label_plots(plots, _read(folder / LABELS), out)
    return written


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _history_plots(plots, path: Path, out: Path) -> list[Path]:
    train, evals = history.read_history(path)
    written = []
    train_losses, val_losses = history.train_losses(train), history.val_losses(evals)
    if train_losses or val_losses:
        written.append(plots.plot_loss_curves(train_losses, val_losses, out / "loss_curves.png"))
    iterations, lrs = history.learning_rate(train)
    if iterations:
        written.append(plots.plot_learning_rate(iterations, lrs, out / "learning_rate.png"))
    metrics = history.eval_metrics(evals)
    if metrics:
        written.append(plots.plot_metric_history(metrics, out / "metrics.png"))
    return written


def _label_plots(plots, labels: dict, out: Path) -> list[Path]:
    written = [plots.plot_class_counts(labels["names"], labels["counts"], out / "labels_instances.png")]
    boxes = labels.get("boxes") or {}
    if boxes.get("width"):
        written.append(plots.plot_box_sizes(boxes["width"], boxes["height"], out / "labels_box_sizes.png"))
        written.append(plots.plot_aspect_ratios(boxes["width"], boxes["height"], out / "labels_aspect_ratio.png"))
    return written


def write_plots_safely(folder: str | Path) -> list[Path]:
    """``write_plots`` for the end of a training: a plotting failure is logged, never fatal to the run."""
    try:
        return write_plots(folder)
    except Exception as exc:  # noqa: BLE001 - the checkpoints are written; pictures are a bonus
        logger.warning("could not draw the plots of %s (%s: %s); retry with tools/plot.py %s",
                       folder, type(exc).__name__, exc, folder)
        return []

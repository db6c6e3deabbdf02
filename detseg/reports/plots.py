"""The pictures a run leaves behind (loss, lr, AP, PR curves, confusion matrix, label statistics).

One function per picture; each takes plain numbers and writes one PNG. Figures are drawn on
matplotlib's Agg canvas without pyplot: no display, no global figure state.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Series = tuple[Sequence[float], Sequence[float]]  # (iterations, values)
DPI = 100
MAX_ANNOTATED_CLASSES = 30  # beyond this the confusion-matrix cells are too small for numbers


def _figure(width: float = 8.0, height: float = 5.0) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def plot_loss_curves(train: Mapping[str, Series], val: Mapping[str, Series], path: str | Path) -> Path:
    """One panel per loss term ("loss" is the total): training (line) and validation (dots) over iterations."""
    names = sorted(set(train) | set(val), key=lambda n: (n != "loss", n))
    if not names:
        raise ValueError("no loss values to plot")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    figure = _figure(4.0 * cols, 3.0 * rows)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        if name in train:
            ax.plot(*train[name], label="train", linewidth=1.2)
        if name in val:
            ax.plot(*val[name], "o-", label="val", markersize=4)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return _save(figure, path)


def plot_learning_rate(iterations: Sequence[float], lrs: Sequence[float], path: str | Path) -> Path:
    figure = _figure(6.0, 3.5)
    ax = figure.subplots()
    ax.plot(iterations, lrs)
    ax.set(xlabel="iteration", ylabel="learning rate", title="learning rate")
    ax.grid(alpha=0.3)
    return _save(figure, path)


def plot_metric_history(series: Mapping[str, Series], path: str | Path, ylabel: str = "percent") -> Path:
    """Evaluation numbers (e.g. "bbox/AP", "bbox/AP50", "sem_seg/mIoU") at each evaluation."""
    if not series:
        raise ValueError("no evaluation metrics to plot")
    figure = _figure(7.0, 4.0)
    ax = figure.subplots()
    for name, (iterations, values) in series.items():
        ax.plot(iterations, values, "o-", label=name, markersize=4)
    ax.set(xlabel="iteration", ylabel=ylabel, title="evaluation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(figure, path)


def plot_pr_curves(recall: Sequence[float], precision: Mapping[str, Sequence[float]], path: str | Path,
                   iou: float = 0.5) -> Path:
    """One precision-recall line per class and their mean (thick); the legend gives each area (AP)."""
    if not precision:
        raise ValueError("no precision-recall curves to plot (no class has ground truth)")
    recall = np.asarray(recall, float)
    curves = {name: np.asarray(p, float) for name, p in precision.items()}
    figure = _figure(7.0, 6.0)
    ax = figure.subplots()
    thin = len(curves) > 20  # 80 COCO classes: lines only, no legend entries
    for name, p in curves.items():
        ax.plot(recall, p, linewidth=1.0, alpha=0.4 if thin else 0.9, label=None if thin else f"{name} {p.mean():.3f}")
    mean = np.mean(list(curves.values()), axis=0)
    ax.plot(recall, mean, color="blue", linewidth=3.0, label=f"all classes {mean.mean():.3f} AP@{iou:g}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"precision-recall, IoU {iou:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[float]], names: Sequence[str], path: str | Path,
                          normalize: bool = True) -> Path:
    """``matrix[predicted][true]`` with background last; normalised per true class (columns sum to 1)."""
    matrix = np.asarray(matrix, float)
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix of shape {matrix.shape} does not fit {len(names)} names")
    if normalize:
        totals = matrix.sum(axis=0, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = max(6.0, 0.45 * len(names) + 3.0)
    figure = _figure(min(size, 20.0), min(size, 20.0) * 0.85)
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(image, ax=ax, shrink=0.8)
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=90 if len(names) > 10 else 45, ha="right" if len(names) <= 10 else "center")
    ax.set_yticks(ticks, names)
    ax.set(xlabel="true", ylabel="predicted",
           title="confusion matrix (normalised per true class)" if normalize else "confusion matrix (counts)")
    if len(names) <= MAX_ANNOTATED_CLASSES:
        _annotate_cells(ax, matrix, normalize)
    return _save(figure, path)


def _annotate_cells(ax, matrix: np.ndarray, normalize: bool) -> None:
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), value in np.ndenumerate(matrix):
        if value:
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            ax.text(col, row, text, ha="center", va="center", fontsize=8,
                    color="white" if value > threshold else "black")


def plot_class_counts(names: Sequence[str], counts: Sequence[int], path: str | Path) -> Path:
    """Training instances per class."""
    figure = _figure(max(6.0, 0.3 * len(names) + 2.0), 4.0)
    ax = figure.subplots()
    ax.bar(range(len(names)), counts, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 8 else 0)
    ax.set(ylabel="instances", title=f"training instances per class ({int(sum(counts))} in all)")
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def plot_box_sizes(widths: Sequence[float], heights: Sequence[float], path: str | Path) -> Path:
    """Box width against height (pixels of the original images), as a 2-D histogram."""
    widths, heights = np.asarray(widths, float), np.asarray(heights, float)
    if widths.size == 0:
        raise ValueError("no boxes to plot")
    figure = _figure(6.0, 5.0)
    ax = figure.subplots()
    _, _, _, image = ax.hist2d(widths, heights, bins=50, cmap="Blues", cmin=1)
    figure.colorbar(image, ax=ax, label="boxes")
    ax.set(xlabel="width (px)", ylabel="height (px)", title=f"box sizes ({widths.size} boxes)")
    return _save(figure, path)


def plot_aspect_ratios(widths: Sequence[float], heights: Sequence[float], path: str | Path) -> Path:
    """Histogram of width / height on a log scale (1 = square)."""
    widths, heights = np.asarray(widths, float), np.asarray(heights, float)
    keep = (widths > 0) & (heights > 0)
    if not keep.any():
        raise ValueError("no boxes with a positive width and height to plot")
    ratios = widths[keep] / heights[keep]
    figure = _figure(6.0, 4.0)
    ax = figure.subplots()
    low, high = np.log2(ratios.min()), np.log2(ratios.max())
    bins = np.logspace(low - 0.05, high + 0.05, 40, base=2.0) if high > low else 10
    ax.hist(ratios, bins=bins, color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.axvline(1.0, color="gray", linestyle="--", linewidth=1)
    ax.set(xlabel="aspect ratio (width / height)", ylabel="boxes", title="box aspect ratios")
    ax.grid(alpha=0.3)
    return _save(figure, path)

"""The zoo's speed/accuracy picture: inference ms per image (log scale) against box AP, one labelled point per
architecture; FCN's mIoU shares the y axis as a hollow point (a different metric, labelled as such)."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_zoo(rows: list[dict], path: str | Path, title: str = "",
             ylabel: str = "box AP on shapes val (FCN, hollow: mIoU)") -> Path:
    """``rows``: zoo rows with ``total_ms`` and ``ap`` or ``miou``; rows without either are left out."""
    points = [_point(r) for r in rows]
    points = [p for p in points if p is not None]
    if not points:
        raise ValueError("no architecture has both a time and a score to plot")
    figure = Figure(figsize=(8, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, ms, score, semantic in points:
        style = {"facecolor": "none", "edgecolor": "tab:purple"} if semantic else {"color": "tab:blue"}
        axes.scatter([ms], [score], s=60, zorder=3, **style)
        axes.annotate(label, (ms, score), xytext=(6, 4), textcoords="offset points", fontsize=9)
    axes.set_xscale("log")
    axes.margins(x=0.2, y=0.12)  # room for the labels right of the points
    axes.set_xlabel("inference ms per image, CPU, batch 1 (selective search included where used)")
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    axes.set_title(title or "detseg architecture zoo")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def _point(row: dict):
    semantic = row.get("miou") is not None
    score = row.get("miou") if semantic else row.get("ap")
    if score is None or not row.get("total_ms"):
        return None
    label = row["title"] + (" (mIoU)" if semantic else "")
    return label, row["total_ms"], score, semantic

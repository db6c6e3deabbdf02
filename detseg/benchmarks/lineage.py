"""Test-time cost of the region-based lineage, R-CNN -> SPPnet -> Fast R-CNN -> Faster R-CNN, on the same images.

Each model is timed per image at batch size 1 on the evaluation transforms of its config:
- ``conv_ms``: the convolutional part. R-CNN runs the backbone on every warped region; SPPnet, Fast and
  Faster R-CNN run backbone (+ neck) once on the image.
- ``model_ms``: the whole forward pass with proposals given (selective search excluded); Faster R-CNN's
  RPN is part of its model.
- ``total_ms``: what a user waits for: selective search (on the original image, the configs' settings)
  plus ``model_ms`` for the three models that read precomputed proposals; ``model_ms`` for Faster R-CNN.
Speed-ups are R-CNN's time divided by the model's, per column. The cost of a forward pass does not
depend on the weights, except through the number of boxes that pass the score threshold into NMS:
random weights pass nearly all of them (a worst case for the region models), trained ones (``trained``:
each config's last.pt) give the cost a user sees.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from detseg.config import Config, load_config
from detseg.data.build import build_dataset
from detseg.data.collate import collate
from detseg.data.datasets.base import read_rgb
from detseg.data.proposals import ProposalDataset, ss_settings
from detseg.utils.checkpoint import load_checkpoint
from detseg.models.build import build_model
from detseg.data.selective_search import selective_search

LINEAGE = ("rcnn", "sppnet", "fast_rcnn", "faster_rcnn")


@dataclass
class LineageTiming:
    arch: str
    config: str
    params: int
    conv_ms: float
    model_ms: float
    total_ms: float


def lineage_configs(config: str | Path, overrides: list[str]) -> dict[str, tuple[str, Config]]:
    """The same-named config (e.g. ``shapes.yaml``) in each of the four architectures' folders."""
    path = Path(config)
    found = {}
    for arch in LINEAGE:
        sibling = path.parent.parent / arch / path.name
        if not sibling.exists():
            raise FileNotFoundError(f"--lineage needs {sibling} (the same file name under configs/{arch}/)")
        found[arch] = (str(sibling), load_config(sibling, [*overrides, "model.backbone.weights=null"]))
    return found


def selective_search_ms(cfg: Config, paths: list[str]) -> tuple[float, dict[int, np.ndarray]]:
    """Mean selective search time per image and the boxes, keyed by position in ``paths``."""
    settings, boxes, elapsed = ss_settings(cfg.model.proposals), {}, 0.0
    settings.pop("source")  # the cache key's, not the function's
    cv2.setNumThreads(1)  # as the cache builder runs it: one process per image
    for i, path in enumerate(paths):
        image = read_rgb(path)
        start = time.perf_counter()
        boxes[i] = selective_search(image, **settings)
        elapsed += time.perf_counter() - start
    return elapsed / len(paths) * 1000, boxes


def top_up(boxes: np.ndarray, count: int, hw: tuple[int, int], seed: int) -> np.ndarray:
    """Exactly ``count`` boxes: the first ``count`` found, then random ones (log-uniform sizes) until
    there are ``count``. The cost of the region models depends on the number of boxes, not on where
    they lie, so this times the papers' regime (~2000 per natural image) on simple synthetic images."""
    missing = count - len(boxes)
    if missing <= 0:
        return boxes[:count]
    rng = np.random.default_rng(seed)
    h, w = hw
    size = np.exp(rng.uniform(np.log(8), np.log(max(h, w)), (missing, 2)))
    x1 = rng.uniform(0, 1, missing) * np.maximum(w - size[:, 0], 0)
    y1 = rng.uniform(0, 1, missing) * np.maximum(h - size[:, 1], 0)
    extra = np.stack([x1, y1, np.minimum(x1 + size[:, 0], w), np.minimum(y1 + size[:, 1], h)], 1)
    return np.concatenate([boxes, extra.astype(np.float32)])


class ConvClock:
    """Accumulates the time spent inside the given modules (hooks): the convolutional part of a forward."""

    def __init__(self, modules: list[nn.Module]):
        self.seconds, self._start = 0.0, 0.0
        self.handles = [h for m in modules for h in (m.register_forward_pre_hook(self._enter),
                                                     m.register_forward_hook(self._leave))]

    def _enter(self, *_):
        self._start = time.perf_counter()

    def _leave(self, *_):
        self.seconds += time.perf_counter() - self._start


def conv_modules(arch: str, model) -> list[nn.Module]:
    return [m for m in (model.backbone, model.neck) if m is not None]


def time_model(arch: str, cfg: Config, batches: list, num_classes: int, repeats: int,
               weights: str | None = None) -> tuple[float, float, int]:
    """(conv ms, model ms) per image, and the parameter count."""
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes).eval()
    if weights:
        model.load_state_dict(load_checkpoint(weights)["model"])
    clock = ConvClock(conv_modules(arch, model))
    with torch.no_grad():
        model(_few_proposals(batches[0], 16), mode="predict")  # warm-up: allocator, lazy inits
        clock.seconds, start = 0.0, time.perf_counter()
        for batch in batches:
            for _ in range(repeats):
                model(batch, mode="predict")
        elapsed = time.perf_counter() - start
    calls = len(batches) * repeats
    return clock.seconds / calls * 1000, elapsed / calls * 1000, sum(p.numel() for p in model.parameters())


def _few_proposals(batch, count: int):
    return dataclasses.replace(batch, proposals=[p[:count] for p in batch.proposals])


def run_lineage(config: str | Path, overrides: list[str], num_images: int = 4, repeats: int = 1,
                proposals: int | None = None, trained: bool = False, rcnn_warp: int | None = None) -> dict:
    """``proposals``: time every model on exactly this many boxes per image (see ``top_up``).
    ``trained``: load each config's ``<train.output_dir>/last.pt``; random weights otherwise.
    ``rcnn_warp``: R-CNN's warp size for this run (its head pools globally, so trained weights still fit)."""
    configs = lineage_configs(config, overrides)
    if rcnn_warp is not None:
        set_rcnn_warp(configs["rcnn"][1], rcnn_warp)
    _, fast_cfg = configs["fast_rcnn"]
    dataset = build_dataset(fast_cfg.data, "val", train=False)
    count = min(num_images, len(dataset))
    paths = [dataset.get_image_info(i)[0] for i in range(count)]
    ss_ms, boxes = selective_search_ms(fast_cfg, paths)
    found = float(np.mean([len(b) for b in boxes.values()]))
    if proposals is not None:
        boxes = {i: top_up(b, proposals, dataset.get_image_info(i)[1], i) for i, b in boxes.items()}
    num_classes = fast_cfg.model.num_classes or len(dataset.category_ids)
    rows = []
    for arch, (path, cfg) in configs.items():
        data = build_dataset(cfg.data, "val", train=False)
        wrapped = ProposalDataset(data, {int(data.image_ids[i]): boxes[i] for i in range(count)})
        batches = [collate([wrapped[i]]) for i in range(count)]
        weights = str(Path(cfg.train.output_dir) / "last.pt") if trained else None
        conv, full, params = time_model(arch, cfg, batches, num_classes, repeats, weights)
        total = full if arch == "faster_rcnn" else full + ss_ms
        rows.append(LineageTiming(arch, path, params, conv, full, total))
    return {"images": count, "threads": torch.get_num_threads(), "rcnn_warp": configs["rcnn"][1].model.rcnn.warp_size,
            "selective_search_ms": ss_ms,
            "selective_search_boxes": found, "proposals_per_image": float(np.mean([len(b) for b in boxes.values()])),
            "models": [vars(r) for r in rows], "speedup_vs_rcnn": speedups(rows)}


def set_rcnn_warp(cfg: Config, warp: int) -> None:
    """Warp size and context padding in the papers' proportion (16 px at 227)."""
    if warp < 8:
        raise ValueError(f"--rcnn-warp must be at least 8 pixels, got {warp}")
    cfg.model.rcnn.warp_size, cfg.model.rcnn.context_padding = warp, round(16 * warp / 227)


def speedups(rows: list[LineageTiming]) -> dict[str, dict[str, float]]:
    base = next(r for r in rows if r.arch == "rcnn")
    return {r.arch: {key: getattr(base, key) / getattr(r, key) for key in ("conv_ms", "model_ms", "total_ms")}
            for r in rows}


def format_lineage(report: dict) -> str:
    lines = [f"{report['images']} images, {report['proposals_per_image']:.0f} proposals per image (selective search "
             f"found {report['selective_search_boxes']:.0f} in {report['selective_search_ms']:.0f} ms per image), "
             f"R-CNN warp {report['rcnn_warp']} px, {report['threads']} threads",
             f"{'model':<12} {'params':>11} {'conv ms':>9} {'model ms':>9} {'total ms':>9}"
             f"   speed-up vs R-CNN: conv / model / total"]
    for row in report["models"]:
        up = report["speedup_vs_rcnn"][row["arch"]]
        lines.append(f"{row['arch']:<12} {row['params']:>11,} {row['conv_ms']:>9.1f} {row['model_ms']:>9.1f} "
                     f"{row['total_ms']:>9.1f}   {up['conv_ms']:>7.1f}x / {up['model_ms']:.1f}x / {up['total_ms']:.1f}x")
    return "\n".join(lines)

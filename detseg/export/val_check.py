"""An exported graph judged in mAP: PyTorch and onnxruntime evaluated on the config's val split by the
one evaluation loop (detseg.app.evaluate) and the same evaluators, and the difference of their metrics.

``OnnxModel`` gives a graph the interface that loop calls (``model(batch, mode="predict")`` -> per-image
predictions in the original images, as the PyTorch model): it runs the graph once per image on the
batch's resized uint8 pixels. Both run one image per batch (``test.batch_size`` 1), as the graph does:
a larger batch pads its images to a common size, which moves the RPN's top-k cut a little and would
read as export drift. Latency: milliseconds per image of the model call, post-processing to the
original image included, data loading and evaluation left out, the first call a warm-up.

Headline metrics: detection "bbox AP" (Mask R-CNN adds "segm AP"), semantic models "sem_seg mIoU"; all
in percent, so a drift of 0.5 is half a point of AP.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from detseg.app.evaluate import evaluate
from detseg.config import Config
from detseg.data.build import build_dataset
from detseg.export.graphs import graph_task
from detseg.export.onnx_runtime import (open_session, read_metadata, require_input_size, run_graph, to_instances,
                                          to_label_map)

PYTORCH = "pytorch"


@dataclass
class ValResult:
    name: str  # "pytorch", or the graph's precision ("onnx fp32", "onnx int8", ...)
    metrics: dict[str, float]  # headline name -> value, e.g. {"bbox AP": 41.2}
    ms_per_image: float


class OnnxModel:
    """An exported graph as the evaluation loop's model (one onnxruntime run per image)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.session = open_session(path)
        self.meta = read_metadata(self.session)
        self.task = graph_task(self.meta["arch"])
        self.has_masks = self.meta["arch"] == "mask_rcnn"

    def eval(self) -> "OnnxModel":
        return self

    def __call__(self, batch, mode: str = "predict") -> list:
        if mode != "predict":
            raise ValueError(f"an exported graph only predicts, got mode '{mode}'")
        return [self._predict(image, hw, orig_hw)
                for image, hw, orig_hw in zip(batch.images, batch.image_sizes, batch.orig_sizes)]

    def _predict(self, image: torch.Tensor, input_hw, orig_hw):
        require_input_size(self.meta, input_hw, self.path)
        h, w = input_hw
        outputs = run_graph(self.session, np.ascontiguousarray(image[:, :h, :w].numpy()))
        if self.task == "semantic":
            return to_label_map(outputs["logits"], input_hw, orig_hw)
        return to_instances(outputs, input_hw, orig_hw, self.meta.get("mask_threshold", 0.5))


class Timed:
    """A model whose calls are timed, the first one left out (both runtimes set up buffers and kernels on
    their first call); every other attribute is the model's (the loop reads task, has_masks)."""

    def __init__(self, model):
        self.model, self.seconds, self.images, self.calls = model, 0.0, 0, 0

    def __call__(self, batch, mode: str = "predict"):
        start = time.perf_counter()
        predictions = self.model(batch, mode=mode)
        self.calls += 1
        if self.calls > 1:
            self.seconds += time.perf_counter() - start
            self.images += len(batch)
        return predictions

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.seconds / self.images if self.images else math.nan


def val_check(cfg: Config, model, graphs: dict[str, Path]) -> list[ValResult]:
    """PyTorch's ``model`` (CPU, eval) first, then each graph (name -> .onnx file), on the val split."""
    cfg = replace(cfg, test=replace(cfg.test, batch_size=1))
    dataset = build_dataset(cfg.data, "val", train=False)
    results = [evaluate_one(PYTORCH, model, dataset, cfg)]
    return results + [evaluate_one(name, OnnxModel(path), dataset, cfg) for name, path in graphs.items()]


def evaluate_one(name: str, model, dataset, cfg: Config) -> ValResult:
    timed = Timed(model)
    metrics = evaluate(timed, dataset, cfg, torch.device("cpu"), output_dir=None)
    return ValResult(name, headline_metrics(metrics), timed.ms_per_image)


def headline_metrics(metrics: dict) -> dict[str, float]:
    """{"bbox AP": .., "segm AP": ..} or {"sem_seg mIoU": ..}: the numbers an export is judged by."""
    picked = {f"{block} AP": metrics[block]["AP"] for block in ("bbox", "segm") if block in metrics}
    if "sem_seg" in metrics:
        picked["sem_seg mIoU"] = metrics["sem_seg"]["mIoU"]
    return picked


def drifts(results: list[ValResult]) -> dict[str, dict[str, float]]:
    """Per graph, each headline metric minus PyTorch's (the first result's)."""
    reference = results[0].metrics
    return {r.name: {k: v - reference[k] for k, v in r.metrics.items()} for r in results[1:]}


def drift_errors(results: list[ValResult], max_drift: float) -> list[str]:
    """One line per graph and metric whose absolute drift is above ``max_drift`` (NaN: no ground truth)."""
    return [f"{name} {metric} differs from PyTorch's by {diff:+.2f} (more than --max-drift {max_drift:g})"
            for name, per_metric in drifts(results).items() for metric, diff in per_metric.items()
            if not math.isnan(diff) and abs(diff) > max_drift]

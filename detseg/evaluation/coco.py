"""COCO box/mask evaluation of ``Instances`` with pycocotools, the reference implementation.

Conventions (those of detectron2):
- Metrics are in percent. A number pycocotools reports as -1 (no ground truth
  in that area range, or for that class, among the evaluated images) is
  returned as ``nan``; the same holds for per-class ``AP-<name>`` entries.
- "segm" results are evaluated without their ``bbox`` so that pycocotools takes
  area (for the small/medium/large ranges) from the mask, not from the box.
- Only the processed image ids are evaluated (``params.imgIds``); an image
  processed twice (e.g. padding of a distributed sampler) counts once.
- ``backend="auto"`` (the default) evaluates with faster-coco-eval's C++
  COCOeval where that package is installed, else with pycocotools, the
  reference; both give the same numbers (a test). Results are loaded as
  pycocotools' ``loadRes`` loads them, with the masks' areas computed in
  batches (detseg.evaluation.coco_results; faster-coco-eval's loadRes decodes
  each mask in its own call, 3x slower), and large result sets are evaluated
  by category in forked processes (detseg.evaluation.coco_split), ``workers``
  of them.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor

from detseg.evaluation.coco_results import gc_paused, load_results
from detseg.evaluation.coco_split import evaluate_split, process_count, split_categories
from detseg.evaluation.confusion import IOU_THRESH, SCORE_THRESH, DetectionConfusion, confusion_from_coco
from detseg.evaluation.distributed import gather_results, is_main_process
from detseg.structures.batch import Batch
from detseg.structures.boxes import xyxy_to_xywh
from detseg.structures.instances import Instances
from detseg.utils import json_text
from detseg.utils.files import atomic_write_text

# Order of ``COCOeval.stats`` for the bbox and segm iou types.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
IOU_TYPES = ("bbox", "segm")
BACKENDS = ("auto", "pycocotools", "faster_coco_eval")


def encode_masks(masks: Tensor) -> list[dict]:
    """Binary masks [N, H, W] -> compressed RLEs whose ``counts`` are str (json-serialisable)."""
    array = masks.detach().to("cpu", torch.uint8).permute(1, 2, 0).numpy()
    rles = mask_util.encode(np.asfortranarray(array))  # pycocotools wants Fortran-order [H, W, N]
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def instances_to_coco_results(
    image_id: int, instances: Instances, category_ids: Tensor, with_masks: bool = False
) -> list[dict]:
    """One image's predictions as COCO result dicts; ``category_ids[label]`` is the COCO id."""
    if len(instances) == 0:
        return []
    # float64 so that w = x2 - x1 loses nothing; pycocotools recomputes area from w * h.
    boxes = xyxy_to_xywh(instances.boxes.detach().to("cpu", torch.float64)).tolist()
    categories = category_ids[instances.labels.detach().cpu().long()].tolist()
    scores = instances.scores.detach().cpu().tolist()
    results = [
        {"image_id": image_id, "category_id": c, "bbox": b, "score": s}
        for c, b, s in zip(categories, boxes, scores)
    ]
    if with_masks:
        if instances.masks is None:
            raise ValueError(f"image {image_id}: 'segm' evaluation needs Instances.masks")
        for result, rle in zip(results, encode_masks(instances.masks)):
            result["segmentation"] = rle
    return results


def resolve_backend(backend: str) -> str:
    """``backend``, with "auto" made faster_coco_eval where it is installed, else pycocotools."""
    if backend != "auto":
        return backend
    return "faster_coco_eval" if importlib.util.find_spec("faster_coco_eval") else "pycocotools"


def _coco_api(backend: str) -> tuple[type, Callable]:
    """(COCO class, COCOeval factory) of the chosen implementation."""
    backend = resolve_backend(backend)
    if backend == "pycocotools":
        return COCO, COCOeval
    if backend == "faster_coco_eval":
        import faster_coco_eval  # imported on demand: an optional dependency

        # one thread for the mask IoUs: coco_split's processes take the CPUs, and on 2 cores its pool of
        # threads cost more CPU time than it saved even alone
        quiet_eval = functools.partial(faster_coco_eval.COCOeval_faster, print_function=lambda *_: None,
                                       rle_iou_max_workers=1)
        return faster_coco_eval.COCO, quiet_eval
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def _quiet():
    """pycocotools prints progress and summaries; callers get numbers instead."""
    return contextlib.redirect_stdout(io.StringIO())


def _percent(value: float) -> float:
    return float(value) * 100.0 if value >= 0 else math.nan


def backend_gt(coco_gt: COCO, backend: str) -> COCO:
    """The ground truth as ``backend``'s COCOeval reads it: faster_coco_eval needs its own COCO object,
    and a deep copy keeps the caller's dataset free of the RLEs it adds."""
    if resolve_backend(backend) == "pycocotools":
        return coco_gt
    coco_cls, _ = _coco_api(backend)
    return coco_cls(copy.deepcopy(coco_gt.dataset))  # no use_deepcopy: loadRes would copy results too


def run_cocoeval(coco_gt: COCO, eval_gt, cocoeval_cls: Callable, results: list[dict], iou_type: str,
                 image_ids: list[int] | None = None, workers: int | None = None):
    """A COCOeval of ``results`` (COCO result dicts) on ``image_ids`` (None: all), after evaluate(),
    accumulate() and summarize().

    ``coco_gt`` (pycocotools) loads the results, ``eval_gt`` is the ground truth of ``cocoeval_cls``
    (see backend_gt); ``workers`` processes (None: as the CPUs and the result count suggest) evaluate
    groups of categories, the same numbers as one.
    """
    with gc_paused():
        cat_ids = sorted(eval_gt.getCatIds())
        groups = split_categories(cat_ids, results, process_count(workers, len(results), len(cat_ids)))

        def evaluate(group: list[int]):
            chosen = set(group)
            group_results = results if len(groups) == 1 else [r for r in results if r["category_id"] in chosen]
            coco_eval = cocoeval_cls(eval_gt, load_results(coco_gt, group_results, iou_type), iou_type)
            coco_eval.params.catIds = group
            if image_ids is not None:
                coco_eval.params.imgIds = list(image_ids)
            with _quiet():
                coco_eval.evaluate()
                coco_eval.accumulate()
            return coco_eval

        coco_eval = evaluate_split(evaluate, groups)
    with _quiet():
        coco_eval.summarize()
    return coco_eval


class CocoEvaluator:
    """Accumulates predictions with ``process`` and scores them with ``evaluate`` (an Evaluator, see
    detseg.evaluation.protocol; the ground truth is ``coco_gt``)."""

    def __init__(
        self,
        coco_gt: COCO,
        category_ids: list[int],
        class_names: list[str] | None = None,
        iou_types: tuple[str, ...] = ("bbox",),
        backend: str = "auto",
        workers: int | None = None,
    ):
        unknown = set(iou_types) - set(IOU_TYPES)
        if unknown:
            raise ValueError(f"unsupported iou types {sorted(unknown)}; choose from {IOU_TYPES}")
        # A label space wider than the file's categories is legal (torchvision's 91-class COCO space
        # has 10 unused ids); pycocotools scores only the ground truth's categories.
        self.coco_gt = coco_gt
        _, self._cocoeval_cls = _coco_api(backend)
        self._gt = backend_gt(coco_gt, backend)
        self.workers = workers  # processes for evaluate(), None: see coco_split.process_count
        self.category_ids = list(category_ids)
        self.class_names = list(class_names or [coco_gt.cats.get(c, {"name": f"category_{c}"})["name"] for c in self.category_ids])
        self.iou_types = tuple(iou_types)
        self._category_lut = torch.tensor(self.category_ids, dtype=torch.int64)
        self.reset()

    def reset(self) -> None:
        self._per_image: dict[int, list[dict]] = {}
        self._precision: dict[str, tuple] = {}  # iou type -> COCOeval.eval["precision"] and its axes

    def process(self, batch: Batch, predictions: list[Instances]) -> None:
        """The predictions of ``batch.image_ids`` (see detseg.evaluation.protocol)."""
        with_masks = "segm" in self.iou_types
        for image_id, instances in zip(batch.image_ids, predictions, strict=True):
            image_id = int(image_id)
            self._per_image[image_id] = instances_to_coco_results(
                image_id, instances, self._category_lut, with_masks
            )

    @property
    def results(self) -> list[dict]:
        """COCO result dicts, sorted by image id so the output does not depend on the world size."""
        return [r for image_id in sorted(self._per_image) for r in self._per_image[image_id]]

    def write_predictions(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json_text.dumps(self.results))

    def evaluate(self) -> dict:
        """``{iou_type: {stat: value, "AP-<class>": value}}`` on rank 0, ``{}`` on other ranks.

        Collective in distributed runs; afterwards rank 0 holds every rank's
        predictions (so ``write_predictions`` writes the whole dataset there).
        """
        gathered = gather_results(list(self._per_image.items()))
        self._per_image = dict(gathered)
        if not is_main_process():
            return {}
        image_ids = sorted(self._per_image)
        return {iou_type: self._evaluate_type(iou_type, image_ids) for iou_type in self.iou_types}

    def _evaluate_type(self, iou_type: str, image_ids: list[int]) -> dict:
        coco_eval = run_cocoeval(self.coco_gt, self._gt, self._cocoeval_cls, self.results, iou_type, image_ids,
                                 self.workers)
        metrics = {name: _percent(v) for name, v in zip(STAT_NAMES, coco_eval.stats)}
        metrics.update(self._per_class_ap(coco_eval))
        metrics.update(self._per_class_ap(coco_eval, iou=0.5))
        self._precision[iou_type] = (coco_eval.eval["precision"], list(coco_eval.params.catIds),
                                     np.asarray(coco_eval.params.iouThrs), np.asarray(coco_eval.params.recThrs))
        return metrics

    def _per_class_ap(self, coco_eval, iou: float | None = None) -> dict[str, float]:
        """``AP-<name>`` (IoU .50:.95), or ``AP50-<name>`` / ``AP75-<name>`` at one IoU threshold."""
        # precision: [iou thr, recall thr, class, area range, max dets]; class axis follows params.catIds.
        precision = coco_eval.eval["precision"]
        if iou is not None:
            precision = precision[_iou_index(coco_eval.params.iouThrs, iou)][None]
        prefix = "AP" if iou is None else f"AP{round(iou * 100)}"
        index = {cat_id: k for k, cat_id in enumerate(coco_eval.params.catIds)}
        metrics = {}
        for name, cat_id in zip(self.class_names, self.category_ids):
            if cat_id not in index:
                continue  # a label-space id with no category in this ground truth
            values = precision[:, :, index[cat_id], 0, -1]
            values = values[values > -1]
            metrics[f"{prefix}-{name}"] = float(values.mean()) * 100.0 if values.size else math.nan
        return metrics

    def pr_curves(self, iou_type: str = "bbox", iou: float = 0.5) -> dict:
        """Per-class precision at COCO's 101 recall points, one IoU threshold, all areas, most detections.

        From the last ``evaluate()`` (rank 0). A class without ground truth among the evaluated images
        (pycocotools fills its column with -1) has no curve.
        """
        if iou_type not in self._precision:
            raise ValueError(f"no '{iou_type}' precision yet: call evaluate() with that iou type first")
        precision, cat_ids, iou_thrs, rec_thrs = self._precision[iou_type]
        at_iou = precision[_iou_index(iou_thrs, iou), :, :, 0, -1]  # [R, K]
        index = {cat_id: k for k, cat_id in enumerate(cat_ids)}
        curves = {}
        for name, cat_id in zip(self.class_names, self.category_ids):
            k = index.get(cat_id)
            if k is not None and (at_iou[:, k] >= 0).any():
                curves[name] = at_iou[:, k].tolist()
        return {"iou": iou, "recall": rec_thrs.tolist(), "precision": curves}

    def confusion(self, score_thresh: float = SCORE_THRESH, iou_thresh: float = IOU_THRESH) -> DetectionConfusion:
        """Detection confusion matrix of the accumulated (after ``evaluate()``: gathered) predictions."""
        return confusion_from_coco(self.coco_gt, self.results, sorted(self._per_image), self.category_ids,
                                   score_thresh, iou_thresh)


def _iou_index(iou_thrs, iou: float) -> int:
    found = np.flatnonzero(np.isclose(np.asarray(iou_thrs), iou))
    if not found.size:
        raise ValueError(f"IoU {iou} is not one of the evaluated thresholds {list(iou_thrs)}")
    return int(found[0])

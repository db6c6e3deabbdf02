"""COCO evaluation speed of plain pycocotools against detseg's evaluation (faster-coco-eval where installed,
categories over processes) on the same synthetic predictions, and whether both give the same 12 summary
statistics. Both clocks run from the result dicts to the stats: loading the results, evaluate, accumulate,
summarize. ``python -m detseg.benchmarks.eval_speed [IMAGES]`` prints the report as one JSON line (the
suite runs it in a fresh process: detseg.benchmarks.fresh_process)."""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import statistics
import time

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detseg.benchmarks.fresh_process import run_json
from detseg.evaluation.coco import _coco_api, backend_gt, resolve_backend, run_cocoeval
from detseg.evaluation.coco_split import process_count

WIDTH, HEIGHT = 640, 480
NUM_CATEGORIES = 20


def _polygon(rng: np.random.RandomState, box: np.ndarray, corners: int = 10) -> list[float]:
    """A star-shaped polygon inscribed in ``box`` (xywh), corners at jittered radii."""
    x, y, w, h = box
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(0.6, 1.0, corners)
    xs = x + w / 2 + np.cos(angles) * radii * w / 2
    ys = y + h / 2 + np.sin(angles) * radii * h / 2
    return np.stack([xs, ys], 1).ravel().round(2).tolist()


def _random_boxes(rng: np.random.RandomState, n: int) -> np.ndarray:
    """xywh boxes with COCO's spread of sizes: small, medium and large objects all occur."""
    side = np.exp(rng.uniform(np.log(8), np.log(300), (n, 2)))
    xy = rng.uniform(0, 1, (n, 2)) * (np.array([WIDTH, HEIGHT]) - side).clip(min=1)
    return np.concatenate([xy, side], 1)


def synthetic_coco(num_images: int = 500, objects: int = 7, detections: int = 100, seed: int = 0) -> tuple[dict, list[dict]]:
    """Deterministic ground truth (polygon masks, ~``objects`` per image) and ``detections`` per image
    (RLE masks): jittered copies of the objects, some with the wrong class, the rest random boxes."""
    rng = np.random.RandomState(seed)
    images, anns, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": WIDTH, "height": HEIGHT, "file_name": f"{image_id:06d}.jpg"})
        boxes = _random_boxes(rng, rng.randint(objects - 3, objects + 4))
        labels = rng.randint(1, NUM_CATEGORIES + 1, len(boxes))
        polygons = [_polygon(rng, b) for b in boxes]
        for box, label, poly in zip(boxes, labels, polygons):
            area = float(mask_util.area(mask_util.merge(mask_util.frPyObjects([poly], HEIGHT, WIDTH))))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(label), "iscrowd": 0,
                         "bbox": box.round(2).tolist(), "area": area, "segmentation": [poly]})
        results += _detections(rng, image_id, boxes, labels, polygons, detections)
    categories = [{"id": c, "name": f"class_{c}"} for c in range(1, NUM_CATEGORIES + 1)]
    return {"images": images, "annotations": anns, "categories": categories}, results


def _moved(polygon: list[float], old: np.ndarray, new: np.ndarray) -> list[float]:
    """``polygon`` carried from xywh box ``old`` onto box ``new``."""
    points = (np.reshape(polygon, (-1, 2)) - old[:2]) / old[2:] * new[2:] + new[:2]
    return points.ravel().round(2).tolist()


def _detections(rng, image_id: int, boxes: np.ndarray, labels: np.ndarray, polygons: list, count: int) -> list[dict]:
    copies = np.repeat(np.arange(len(boxes)), 3)[: count // 2]
    wh = boxes[copies, 2:]
    jittered = np.concatenate([boxes[copies, :2] + wh * rng.normal(0, 0.06, wh.shape),
                               wh * rng.uniform(0.85, 1.15, wh.shape)], 1)
    det_boxes = np.concatenate([jittered, _random_boxes(rng, count - len(copies))])
    det_labels = np.concatenate([np.where(rng.uniform(size=len(copies)) < 0.8, labels[copies],
                                          rng.randint(1, NUM_CATEGORIES + 1, len(copies))),
                                 rng.randint(1, NUM_CATEGORIES + 1, count - len(copies))])
    # a detector scores its hits higher than its misses, with overlap
    scores = np.concatenate([rng.uniform(0.2, 1.0, len(copies)), rng.uniform(0.01, 0.6, count - len(copies))])
    shapes = [_moved(polygons[i], boxes[i], b) for i, b in zip(copies, det_boxes)]
    shapes += [_polygon(rng, b) for b in det_boxes[len(copies):]]
    rles = mask_util.frPyObjects(shapes, HEIGHT, WIDTH)
    out = []
    for box, label, score, rle in zip(det_boxes, det_labels, scores, rles):
        rle["counts"] = rle["counts"].decode("ascii")  # as a json file holds it
        out.append({"image_id": image_id, "category_id": int(label), "score": round(float(score), 4),
                    "bbox": box.round(2).tolist(), "segmentation": rle})
    return out


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def _ground_truth(dataset: dict) -> COCO:
    """A pycocotools COCO of its own: pycocotools' evaluate() replaces the polygons by RLEs in place, and
    the next run (and the other side) starts from polygons too."""
    gt = COCO()
    gt.dataset = copy.deepcopy(dataset)
    with _quiet():
        gt.createIndex()
    return gt


def run_pycocotools(dataset: dict, results: list[dict], iou_type: str) -> tuple[np.ndarray, float]:
    """12 stats and seconds of plain pycocotools: load the results, evaluate, accumulate, summarize (the
    ground truth is loaded before the clock starts, as on the detseg side)."""
    gt = _ground_truth(dataset)
    start = time.perf_counter()
    drop = "segmentation" if iou_type == "bbox" else "bbox"  # segm: areas from the masks, as detseg does
    anns = [{k: v for k, v in r.items() if k != drop} for r in results]  # loadRes writes into its input
    with _quiet():
        coco_eval = COCOeval(gt, gt.loadRes(anns), iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    seconds = time.perf_counter() - start
    return np.asarray(coco_eval.stats[:12], dtype=np.float64), seconds


def run_detseg(dataset: dict, results: list[dict], iou_type: str, backend: str = "auto",
               workers: int | None = None) -> tuple[np.ndarray, float]:
    """12 stats and seconds of what CocoEvaluator.evaluate() runs on the same results (run_cocoeval);
    its ground truth is made before the clock starts, as CocoEvaluator makes it once at construction."""
    gt = _ground_truth(dataset)
    eval_gt = backend_gt(gt, backend)
    _, cocoeval_cls = _coco_api(backend)
    start = time.perf_counter()
    coco_eval = run_cocoeval(gt, eval_gt, cocoeval_cls, results, iou_type, workers=workers)
    seconds = time.perf_counter() - start
    return np.asarray(coco_eval.stats[:12], dtype=np.float64), seconds


def compare_backends(num_images: int = 500, iou_types: tuple[str, ...] = ("bbox", "segm"), repeats: int = 3) -> dict:
    """Median seconds of ``repeats`` alternating runs of plain pycocotools and of detseg's evaluation
    (default backend and processes): one timing of a few seconds on a shared 2-core machine varied 2x
    between runs."""
    dataset, results = synthetic_coco(num_images)
    report = {"images": num_images, "ground_truth": len(dataset["annotations"]), "detections": len(results),
              "repeats": repeats, "detseg_backend": resolve_backend("auto"),
              "detseg_processes": process_count(None, len(results), NUM_CATEGORIES)}
    for iou_type in iou_types:
        times = {"pycocotools": [], "detseg": []}
        for _ in range(repeats):
            slow, seconds = run_pycocotools(dataset, results, iou_type)
            times["pycocotools"].append(seconds)
            fast, seconds = run_detseg(dataset, results, iou_type)
            times["detseg"].append(seconds)
        slow_s, fast_s = statistics.median(times["pycocotools"]), statistics.median(times["detseg"])
        report[iou_type] = {"pycocotools_s": slow_s, "detseg_s": fast_s, "speedup": slow_s / fast_s,
                            "max_stat_diff": float(np.abs(slow - fast).max()),
                            "identical": bool(np.array_equal(slow, fast)),
                            "stats": {"pycocotools": slow.tolist(), "detseg": fast.tolist()}}
    return report


def compare_in_fresh_process(num_images: int = 500) -> dict:
    """compare_backends in a new interpreter, which holds what an evaluation holds and no more."""
    return run_json("detseg.benchmarks.eval_speed", [str(num_images)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("images", type=int, nargs="?", default=500)
    print(json.dumps(compare_backends(parser.parse_args().images)))


if __name__ == "__main__":
    main()

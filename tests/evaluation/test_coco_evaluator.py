"""CocoEvaluator against pycocotools run directly on the written predictions."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from eval_batches import batch_of
from eval_coco_fixtures import CATEGORY_IDS, CLASS_NAMES, make_coco_gt, mixed_predictions, perfect_predictions
from pycocotools.cocoeval import COCOeval

from detseg.evaluation import CocoEvaluator, format_metrics_table
from detseg.evaluation.coco import STAT_NAMES, resolve_backend
from detseg.structures import Instances


@pytest.fixture(scope="module")
def coco_gt():
    return make_coco_gt()


# faster-coco-eval is an optional dependency (not in pyproject's requirements).
BACKENDS = [
    "pycocotools",
    pytest.param("faster_coco_eval", marks=pytest.mark.skipif(
        importlib.util.find_spec("faster_coco_eval") is None, reason="faster-coco-eval not installed")),
]


def run_evaluator(coco_gt, predictions: dict, iou_types=("bbox",), backend="pycocotools", workers=1) -> CocoEvaluator:
    evaluator = CocoEvaluator(coco_gt, CATEGORY_IDS, CLASS_NAMES, iou_types, backend, workers)
    evaluator.process(batch_of(list(predictions)), list(predictions.values()))
    return evaluator


def direct_cocoeval(coco_gt, json_path, iou_type, image_ids, cat_ids=None) -> np.ndarray:
    """The reference: pycocotools on the json file, stats in percent with -1 -> nan."""
    anns = json.loads(json_path.read_text())
    if iou_type == "segm":
        for ann in anns:
            ann.pop("bbox")  # so pycocotools takes the area from the mask
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(anns), iou_type)
        coco_eval.params.imgIds = image_ids
        if cat_ids is not None:
            coco_eval.params.catIds = cat_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return np.where(coco_eval.stats >= 0, coco_eval.stats * 100, np.nan)


@pytest.mark.parametrize("workers", [1, 2])  # 2: categories split over a forked process
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_matches_pycocotools(coco_gt, tmp_path, iou_type, backend, workers):
    evaluator = run_evaluator(coco_gt, mixed_predictions(), ("bbox", "segm"), backend, workers)
    metrics = evaluator.evaluate()[iou_type]
    path = tmp_path / "predictions.json"
    evaluator.write_predictions(path)

    expected = direct_cocoeval(coco_gt, path, iou_type, [1, 2, 3, 4])
    ours = [metrics[k] for k in STAT_NAMES]
    if backend == "pycocotools":
        np.testing.assert_array_equal(ours, expected)  # same code path, split or not: bit-identical
    else:  # its C++ sums in another order: last-bit differences on this fixture
        np.testing.assert_allclose(ours, expected, rtol=1e-12)
    assert 0 < metrics["AP"] < 100  # the fixture is neither perfect nor hopeless
    for name, cat_id in zip(CLASS_NAMES, CATEGORY_IDS):
        per_class = direct_cocoeval(coco_gt, path, iou_type, [1, 2, 3, 4], cat_ids=[cat_id])[0]
        assert metrics[f"AP-{name}"] == pytest.approx(per_class, rel=1e-12)
    curves = evaluator.pr_curves(iou_type)["precision"]
    assert set(curves) == set(CLASS_NAMES) and all(len(c) == 101 for c in curves.values())


def test_default_backend_is_faster_coco_eval_where_installed(coco_gt):
    installed = importlib.util.find_spec("faster_coco_eval") is not None
    assert resolve_backend("auto") == ("faster_coco_eval" if installed else "pycocotools")
    assert resolve_backend("pycocotools") == "pycocotools"
    assert CocoEvaluator(coco_gt, CATEGORY_IDS)._gt is not coco_gt or not installed


def test_subset_of_images_and_image_without_gt(coco_gt, tmp_path):
    predictions = mixed_predictions()
    subset = {i: predictions[i] for i in (1, 3)}  # image 3 has no gt: its detections are FPs
    evaluator = run_evaluator(coco_gt, subset)
    path = tmp_path / "predictions.json"
    evaluator.write_predictions(path)
    metrics = evaluator.evaluate()["bbox"]
    np.testing.assert_array_equal([metrics[k] for k in STAT_NAMES], direct_cocoeval(coco_gt, path, "bbox", [1, 3]))
    assert math.isnan(metrics["APl"])  # images 1 and 3 hold no large object
    assert math.isnan(metrics["AP-bird"])  # no bird gt in images 1 and 3


def test_crowd_region_detections_are_ignored(coco_gt):
    predictions = perfect_predictions()
    p = predictions[2]  # add high-scoring birds inside image 2's crowd region of birds
    predictions[2] = Instances(
        torch.cat([p.boxes, torch.tensor([[135.0, 25, 185, 115], [140, 30, 180, 100]])]),
        torch.cat([p.scores, torch.tensor([0.99, 0.98])]),
        torch.cat([p.labels, torch.tensor([2, 2])]),
    )
    metrics = run_evaluator(coco_gt, predictions).evaluate()["bbox"]
    assert metrics["AP"] == 100.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_perfect_predictions_give_100(coco_gt, backend):
    result = run_evaluator(coco_gt, perfect_predictions(), ("bbox", "segm"), backend).evaluate()
    for iou_type in ("bbox", "segm"):
        metrics = result[iou_type]
        # AR1 allows one detection per image and class: image 4 holds 2 of the 3 cats -> (2/3 + 1 + 1) / 3.
        assert metrics["AR1"] == pytest.approx(800 / 9)
        assert all(metrics[k] == pytest.approx(100.0) for k in STAT_NAMES if k != "AR1"), metrics
        assert all(metrics[f"AP-{n}"] == pytest.approx(100.0) for n in CLASS_NAMES)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_predictions_give_zeros(coco_gt, tmp_path, backend):
    evaluator = run_evaluator(coco_gt, {i: Instances.empty() for i in (1, 2, 3, 4)}, ("bbox", "segm"), backend)
    result = evaluator.evaluate()
    for metrics in result.values():
        assert [metrics[k] for k in STAT_NAMES] == [0.0] * 12
        assert [metrics[f"AP-{n}"] for n in CLASS_NAMES] == [0.0] * 3
    evaluator.write_predictions(tmp_path / "predictions.json")
    assert json.loads((tmp_path / "predictions.json").read_text()) == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside pycocotools' mask.decode on numpy 2
def test_conversion_maps_ids_and_keeps_precision(coco_gt):
    box = [10.25, 20.5, 30.125, 40.0]
    mask = torch.zeros(1, 100, 100, dtype=torch.uint8)
    mask[0, 21:40, 10:30] = 1
    instances = Instances(torch.tensor([box]), torch.tensor([0.5]), torch.tensor([1]), mask)
    evaluator = CocoEvaluator(coco_gt, CATEGORY_IDS, iou_types=("bbox", "segm"))
    evaluator.process(batch_of([1]), [instances])
    (result,) = evaluator.results
    assert result["category_id"] == 5 and result["image_id"] == 1 and result["score"] == 0.5
    assert result["bbox"] == [10.25, 20.5, 19.875, 19.5]
    assert isinstance(result["segmentation"]["counts"], str)
    np.testing.assert_array_equal(mask_util.decode(result["segmentation"]), mask[0].numpy())
    assert evaluator.class_names == CLASS_NAMES  # taken from the gt when not given


def test_reprocessed_image_counts_once_and_reset(coco_gt):
    predictions = mixed_predictions()
    evaluator = run_evaluator(coco_gt, predictions)
    once = evaluator.evaluate()
    evaluator.process(batch_of([2]), [predictions[2]])  # e.g. a distributed sampler's padding
    np.testing.assert_array_equal(list(evaluator.evaluate()["bbox"].values()), list(once["bbox"].values()))
    evaluator.reset()
    assert evaluator.results == []


def test_label_space_wider_than_ground_truth(coco_gt):
    """torchvision's 91-class space: ids without a category score nothing and break nothing."""
    wide_ids = sorted(set(CATEGORY_IDS) | {2, 3, 4})
    predictions = mixed_predictions()
    lut = {cid: i for i, cid in enumerate(wide_ids)}
    remapped = {
        image_id: Instances(p.boxes, p.scores, torch.tensor([lut[CATEGORY_IDS[int(k)]] for k in p.labels]))
        for image_id, p in predictions.items()
    }
    wide = CocoEvaluator(coco_gt, wide_ids)
    wide.process(batch_of(list(remapped)), list(remapped.values()))
    narrow = run_evaluator(coco_gt, predictions)
    assert wide.evaluate()["bbox"]["AP"] == narrow.evaluate()["bbox"]["AP"]


def test_invalid_arguments(coco_gt):
    with pytest.raises(ValueError, match="unsupported"):
        CocoEvaluator(coco_gt, CATEGORY_IDS, iou_types=("keypoints",))
    with pytest.raises(ValueError, match="unknown backend"):
        CocoEvaluator(coco_gt, CATEGORY_IDS, backend="detectron2")
    evaluator = CocoEvaluator(coco_gt, CATEGORY_IDS, iou_types=("segm",))
    no_masks = Instances(torch.tensor([[0.0, 0, 5, 5]]), torch.tensor([0.5]), torch.tensor([0]))
    with pytest.raises(ValueError, match="masks"):
        evaluator.process(batch_of([1]), [no_masks])


def test_format_metrics_table(coco_gt):
    metrics = run_evaluator(coco_gt, mixed_predictions(), ("bbox", "segm")).evaluate()
    table = format_metrics_table(metrics)
    assert "[bbox]" in table and "[segm]" in table
    for name in (*STAT_NAMES, *CLASS_NAMES):
        assert name in table
    assert f"{metrics['bbox']['AP']:.2f}" in table

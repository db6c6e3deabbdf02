"""Evaluating categories in forked processes gives the arrays of one COCOeval run, bit for bit."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from detseg.benchmarks.eval_speed import _ground_truth, synthetic_coco
from detseg.evaluation.coco import _coco_api, backend_gt, run_cocoeval
from detseg.evaluation.coco_split import process_count, split_categories

BACKENDS = [
    "pycocotools",
    pytest.param("faster_coco_eval", marks=pytest.mark.skipif(
        importlib.util.find_spec("faster_coco_eval") is None, reason="faster-coco-eval not installed")),
]


@pytest.fixture(scope="module")
def coco_set():
    return synthetic_coco(num_images=12, detections=30)


def evaluated(coco_set, backend, iou_type, workers, image_ids=None):
    dataset, results = coco_set
    gt = _ground_truth(dataset)
    return run_cocoeval(gt, backend_gt(gt, backend), _coco_api(backend)[1], results, iou_type, image_ids, workers)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_split_gives_the_arrays_and_stats_of_one_run(coco_set, backend, iou_type):
    image_ids = list(range(2, 12))  # a subset, as CocoEvaluator passes the processed images
    one = evaluated(coco_set, backend, iou_type, 1, image_ids)
    split = evaluated(coco_set, backend, iou_type, 3, image_ids)
    assert split.params.catIds == one.params.catIds == list(range(1, 21))
    for key in ("precision", "recall", "scores"):
        np.testing.assert_array_equal(split.eval[key], one.eval[key])
    np.testing.assert_array_equal(split.stats, one.stats)
    assert 0 < one.stats[0] < 1


def test_categories_split_by_result_count():
    results = [{"category_id": c} for c, n in ((1, 50), (2, 30), (3, 20), (4, 10), (5, 0)) for _ in range(n)]
    groups = split_categories([1, 2, 3, 4, 5], results, 2)
    assert sorted(c for g in groups for c in g) == [1, 2, 3, 4, 5]
    assert groups == [[1, 4], [2, 3, 5]]  # 60 against 50 results
    assert split_categories([7], results, 4) == [[7]]  # no empty groups


def test_process_count():
    assert process_count(3, 10, 20) == 3  # as asked, however little the work
    assert process_count(8, 10, 2) == 2  # never more than the categories
    assert process_count(None, 100, 20) == 1  # too few results to pay for a fork


def test_failure_in_a_child_is_reported(coco_set):
    dataset, results = coco_set
    gt = _ground_truth(dataset)
    cocoeval_cls = _coco_api("pycocotools")[1]

    parent = os.getpid()

    def fails_in_a_child(coco_gt, coco_dt, iou_type):
        if os.getpid() != parent:
            raise ValueError("broken in the child")
        return cocoeval_cls(coco_gt, coco_dt, iou_type)

    with pytest.raises(RuntimeError, match=r"categories \[.*\] failed: ValueError: broken in the child"):
        run_cocoeval(gt, gt, fails_in_a_child, results, "bbox", workers=2)

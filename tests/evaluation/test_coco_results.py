"""Results loaded in batches hold what pycocotools' loadRes gives, and COCOeval scores them the same."""
from __future__ import annotations

import copy
import gc

import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from detseg.benchmarks.eval_speed import _ground_truth, _quiet, synthetic_coco
from detseg.evaluation.coco_results import MASKS_PER_CALL, gc_paused, load_results


@pytest.fixture(scope="module")
def coco_set():
    # 600 masks: more than two of pycocotools' batches
    return synthetic_coco(num_images=6, detections=100)


def load_res(gt, results, drop):
    with _quiet():
        return gt.loadRes([{k: v for k, v in r.items() if k != drop} for r in results])


def test_mask_results_get_loadres_areas_ids_and_crowd_flags(coco_set):
    dataset, results = coco_set
    assert len(results) > 2 * MASKS_PER_CALL
    gt = _ground_truth(dataset)
    ours, reference = load_results(gt, results, "segm"), load_res(gt, results, "bbox")
    assert len(ours.anns) == len(reference.anns) == len(results)
    for ann_id, expected in reference.anns.items():
        got = ours.anns[ann_id]
        assert (got["area"], got["id"], got["iscrowd"], got["image_id"], got["category_id"], got["score"]) == (
            expected["area"], expected["id"], expected["iscrowd"], expected["image_id"], expected["category_id"],
            expected["score"])
        assert "bbox" not in got  # a mask COCOeval reads masks and areas only
    assert ours.getImgIds() == reference.getImgIds() and ours.getCatIds() == reference.getCatIds()


def test_box_results_get_loadres_areas_and_box_polygons(coco_set):
    dataset, results = coco_set
    gt = _ground_truth(dataset)
    ours, reference = load_results(gt, results, "bbox"), load_res(gt, results, "segmentation")
    for ann_id, expected in reference.anns.items():
        got = ours.anns[ann_id]
        assert got["area"] == expected["area"]
        assert got["segmentation"] == expected["segmentation"] and got["bbox"] == expected["bbox"]


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_cocoeval_gives_the_same_stats_on_either_loading(coco_set, iou_type):
    dataset, results = coco_set
    stats = []
    for load in (lambda gt: load_results(gt, results, iou_type),
                 lambda gt: load_res(gt, results, "segmentation" if iou_type == "bbox" else "bbox")):
        gt = _ground_truth(dataset)
        with _quiet():
            coco_eval = COCOeval(gt, load(gt), iou_type)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        stats.append(coco_eval.stats)
    np.testing.assert_array_equal(stats[0], stats[1])
    assert stats[0][0] > 0.05  # the synthetic detections hit some objects


def test_the_callers_results_are_left_as_they_were(coco_set):
    dataset, results = coco_set
    before = copy.deepcopy(results)
    load_results(_ground_truth(dataset), results, "segm")
    load_results(_ground_truth(dataset), results, "bbox")
    assert results == before


def test_results_of_unknown_images_are_named(coco_set):
    dataset, results = coco_set
    stray = [dict(results[0], image_id=999)]
    with pytest.raises(ValueError, match=r"1 image ids the ground truth does not have, e.g. \[999\]"):
        load_results(_ground_truth(dataset), stray, "bbox")


def test_gc_paused_restores_the_collector():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("an evaluation failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()

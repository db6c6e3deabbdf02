"""Confusion-matrix metrics against numbers worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from detseg.evaluation.sem_seg import SemSegEvaluator, confusion_metrics
from detseg.evaluation.table import format_metrics_table
from tests.evaluation.eval_batches import batch_of


def test_metrics_of_a_small_example():
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 255],
                   [2, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [0, 0, 2, 0],
                         [2, 2, 0, 1]])
    evaluator = SemSegEvaluator(["background", "a", "b", "never"], {3: gt}.__getitem__)
    evaluator.process(batch_of([3]), [pred])
    m = evaluator.evaluate()["sem_seg"]
    # labelled pixels: bg 4 (3 right), a 3 (2 right), b 3 (2 right); 'never' absent everywhere
    iou_bg, iou_a, iou_b = 3 / (4 + 4 - 3), 2 / (3 + 3 - 2), 2 / (3 + 3 - 2)
    assert m["IoU-background"] == pytest.approx(100 * iou_bg)
    assert m["IoU-a"] == pytest.approx(100 * iou_a) and m["IoU-b"] == pytest.approx(100 * iou_b)
    assert math.isnan(m["IoU-never"]) and math.isnan(m["ACC-never"])
    assert m["mIoU"] == pytest.approx(100 * (iou_bg + iou_a + iou_b) / 3)
    assert m["pACC"] == pytest.approx(100 * 7 / 10)
    assert m["mACC"] == pytest.approx(100 * (3 / 4 + 2 / 3 + 2 / 3) / 3)
    assert m["fwIoU"] == pytest.approx(100 * (4 * iou_bg + 3 * iou_a + 3 * iou_b) / 10)
    assert list(m)[0] == "mIoU"  # the trainer's best.pt follows the first number


def test_batches_accumulate_like_one_pass():
    g = torch.Generator().manual_seed(0)
    preds = [torch.randint(0, 5, (7, 9), generator=g) for _ in range(4)]
    gts = [torch.randint(0, 5, (7, 9), generator=g).numpy() for _ in range(4)]
    whole, parts = (SemSegEvaluator(list("abcde"), gts.__getitem__) for _ in range(2))
    whole.process(batch_of(range(4)), preds)
    for image_id, p in enumerate(preds):
        parts.process(batch_of([image_id]), [p])
    assert torch.equal(whole.confusion, parts.confusion)
    assert whole.confusion.sum() == 4 * 63
    assert confusion_metrics(np.eye(3) * 5, list("abc"))["mIoU"] == 100.0


def test_predicted_class_without_ground_truth_counts_as_zero_iou():
    m = confusion_metrics(np.array([[8, 2], [0, 0]]), ["background", "ghost"])
    assert m["IoU-ghost"] == 0.0 and math.isnan(m["ACC-ghost"])
    assert m["mIoU"] == pytest.approx(100 * (0.8 + 0.0) / 2)


def test_bad_inputs_are_refused():
    evaluator = SemSegEvaluator(["background", "a"], [np.zeros((3, 2)), np.zeros((2, 2))].__getitem__)
    with pytest.raises(ValueError, match="differ in size"):
        evaluator.process(batch_of([0]), [torch.zeros(2, 3, dtype=torch.int64)])
    with pytest.raises(ValueError, match="labels outside"):
        evaluator.process(batch_of([1]), [torch.full((2, 2), 2)])


def test_table_shows_summary_and_per_class_rows():
    text = format_metrics_table({"sem_seg": confusion_metrics(np.array([[3, 1], [1, 3]]), ["background", "a"])})
    assert "mIoU" in text and "background" in text and "60.00" in text

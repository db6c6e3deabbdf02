"""Detection confusion matrix (detseg.evaluation.confusion) on hand-made boxes: exact counts."""
import numpy as np
import pytest
import torch
from eval_batches import batch_of
from pycocotools.coco import COCO

from detseg.evaluation.confusion import DetectionConfusion, confusion_from_coco, match_boxes

# classes: 0 = cat, 1 = dog, 2 = bird; index 3 = background
GT_BOXES = torch.tensor([[0., 0., 10., 10.], [20., 20., 40., 40.], [50., 50., 60., 60.]])
GT_LABELS = torch.tensor([0, 1, 2])  # cat, dog, bird
PRED_BOXES = torch.tensor([
    [0., 0., 10., 11.],     # the cat, as cat (IoU 0.91): correct
    [21., 21., 40., 40.],   # the dog, as cat (IoU 0.90): wrong class
    [80., 80., 90., 90.],   # nothing there, as bird: false positive
    [50., 50., 60., 60.],   # the bird, but scored below the threshold: the bird is missed
])
PRED_LABELS = torch.tensor([0, 0, 2, 2])
PRED_SCORES = torch.tensor([0.9, 0.8, 0.7, 0.1])


def test_correct_wrong_class_false_positive_and_miss():
    confusion = DetectionConfusion(num_classes=3, score_thresh=0.25, iou_thresh=0.5)
    confusion.update(GT_BOXES, GT_LABELS, PRED_BOXES, PRED_LABELS, PRED_SCORES)
    expected = np.zeros((4, 4), np.int64)  # [predicted, true]
    expected[0, 0] = 1  # cat seen as cat
    expected[0, 1] = 1  # dog seen as cat
    expected[2, 3] = 1  # bird predicted on background: background column
    expected[3, 2] = 1  # bird missed: background row
    np.testing.assert_array_equal(confusion.matrix, expected)


def test_images_accumulate_and_low_iou_is_no_match():
    confusion = DetectionConfusion(num_classes=3)
    confusion.update(GT_BOXES, GT_LABELS, PRED_BOXES, PRED_LABELS, PRED_SCORES)
    # second image: a dog found with IoU 0.25 only -> a false-positive dog and a missed dog
    confusion.update(torch.tensor([[0., 0., 10., 10.]]), torch.tensor([1]),
                     torch.tensor([[5., 0., 15., 10.]]), torch.tensor([1]), torch.tensor([0.99]))
    assert confusion.matrix[1, 3] == 1 and confusion.matrix[3, 1] == 1
    assert confusion.matrix.sum() == 4 + 2
    # every gt lands in exactly one column entry of its class
    assert confusion.matrix[:, :3].sum(axis=0).tolist() == [1, 2, 1]


def test_matching_is_one_to_one_highest_iou_first():
    gt = torch.tensor([[0., 0., 10., 10.]])
    preds = torch.tensor([[0., 0., 10., 12.], [0., 0., 10., 10.]])  # IoU 0.83 and 1.0
    assert match_boxes(gt, preds, 0.5) == [(0, 1)]
    confusion = DetectionConfusion(num_classes=2)
    confusion.update(gt, [0], preds, [1, 0], [0.9, 0.9])
    # the exact box (class 0) takes the object; the other prediction (class 1) is a false positive
    assert confusion.matrix.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


def test_empty_image_and_no_predictions():
    confusion = DetectionConfusion(num_classes=2)
    confusion.update(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, 4), torch.zeros(0), torch.zeros(0))
    confusion.update(torch.tensor([[0., 0., 5., 5.]]), [1], torch.zeros(0, 4), [], [])
    assert confusion.matrix.tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0]]


def test_from_coco_results_uses_file_category_ids_and_skips_crowd():
    # file ids 7 (cat) and 3 (dog); label space [7, 3] -> cat = 0, dog = 1
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "height": 100, "width": 100}, {"id": 2, "height": 100, "width": 100}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [20, 20, 20, 20], "area": 400, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 3, "bbox": [60, 60, 30, 30], "area": 900, "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 3, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0},
        ],
    }
    gt.createIndex()
    results = [
        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 11], "score": 0.9},   # cat as cat
        {"image_id": 1, "category_id": 7, "bbox": [21, 21, 19, 19], "score": 0.8},  # dog as cat
        {"image_id": 1, "category_id": 3, "bbox": [60, 60, 30, 30], "score": 0.9},  # on the crowd: FP
    ]  # image 2: no prediction, its dog is missed
    confusion = confusion_from_coco(gt, results, [1, 2], category_ids=[7, 3])
    assert confusion.matrix.tolist() == [[1, 1, 0], [0, 0, 1], [0, 1, 0]]
    as_dict = confusion.to_dict(["cat", "dog"])
    assert as_dict["names"] == ["cat", "dog", "background"] and as_dict["matrix"] == confusion.matrix.tolist()


def test_coco_evaluator_gives_confusion_pr_curves_and_per_class_ap50():
    from detseg.evaluation.coco import CocoEvaluator
    from detseg.structures import Instances

    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "height": 100, "width": 100}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "bird"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 20, 20], "area": 400, "iscrowd": 0},
        ],
    }
    gt.createIndex()
    evaluator = CocoEvaluator(gt, [1, 2, 3], ["cat", "dog", "bird"])
    # the cat found exactly; the dog at IoU 0.64 (counts at 0.5, not at 0.75 and above)
    found = Instances(boxes=torch.tensor([[0., 0., 10., 10.], [20., 20., 32.8, 40.]]),
                      scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 1]))
    evaluator.process(batch_of([1]), [found])
    metrics = evaluator.evaluate()["bbox"]
    assert metrics["AP50-cat"] == pytest.approx(100.0) and metrics["AP50-dog"] == pytest.approx(100.0)
    assert metrics["AP-cat"] == pytest.approx(100.0) and metrics["AP-dog"] == pytest.approx(30.0)  # 0.5..0.6 of 10
    assert np.isnan(metrics["AP50-bird"])
    pr = evaluator.pr_curves("bbox", iou=0.5)
    assert set(pr["precision"]) == {"cat", "dog"} and len(pr["recall"]) == 101  # no bird ground truth
    assert pr["precision"]["dog"] == pytest.approx([1.0] * 101)
    assert evaluator.confusion().matrix.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]

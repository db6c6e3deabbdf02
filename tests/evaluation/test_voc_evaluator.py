"""VocEvaluator: hand-computed cases and equality with the official devkit's voc_eval logic."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from eval_batches import batch_of
from torchvision.ops import box_iou

from detseg.evaluation import VocEvaluator, format_metrics_table, voc_ap
from detseg.structures import Instances

# ---------------------------------------------------------------- devkit reference (py-faster-rcnn's voc_eval)


def devkit_voc_ap(rec, prec, use_07_metric):
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def devkit_overlaps(bb, gts):
    """IoU of one 1-based integer box against [G, 4] ones, with the devkit's +1 pixel convention."""
    iw = np.maximum(np.minimum(gts[:, 2], bb[2]) - np.maximum(gts[:, 0], bb[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(gts[:, 3], bb[3]) - np.maximum(gts[:, 1], bb[1]) + 1.0, 0.0)
    inters = iw * ih
    uni = (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) + (gts[:, 2] - gts[:, 0] + 1.0) * (
        gts[:, 3] - gts[:, 1] + 1.0
    ) - inters
    return inters / uni


def devkit_voc_eval(gts, dets, cls, ovthresh=0.5, use_07_metric=False):
    """gts: {image: [(cls, bbox, difficult)]}, dets: [(image, cls, score, bbox)], 1-based int boxes."""
    recs, npos = {}, 0
    for image, objs in gts.items():
        objs = [o for o in objs if o[0] == cls]
        difficult = np.array([o[2] for o in objs], dtype=bool)
        recs[image] = {"bbox": np.array([o[1] for o in objs], float).reshape(-1, 4),
                       "difficult": difficult, "det": [False] * len(objs)}
        npos += int((~difficult).sum())
    dets = [d for d in dets if d[1] == cls]
    confidence = np.array([d[2] for d in dets])
    order = np.argsort(-confidence, kind="stable")
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for d, k in enumerate(order):
        rec, bb = recs[dets[k][0]], np.array(dets[k][3], float)
        ovmax = -np.inf
        if rec["bbox"].size > 0:
            overlaps = devkit_overlaps(bb, rec["bbox"])
            ovmax, jmax = np.max(overlaps), np.argmax(overlaps)
        if ovmax > ovthresh:
            if not rec["difficult"][jmax]:
                if not rec["det"][jmax]:
                    tp[d], rec["det"][jmax] = 1.0, True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return devkit_voc_ap(rec, prec, use_07_metric)


def to_xyxy(devkit_boxes) -> torch.Tensor:
    """1-based inclusive integer boxes -> our continuous xyxy (xmin - 1, ymin - 1, xmax, ymax)."""
    boxes = torch.tensor(devkit_boxes, dtype=torch.float32).reshape(-1, 4)
    return boxes - torch.tensor([1.0, 1.0, 0.0, 0.0])


def random_dataset(seed, num_images=40, num_classes=3):
    rng = np.random.default_rng(seed)
    gts, dets = {}, []
    for image in range(num_images):
        gts[image] = []
        for _ in range(rng.integers(0, 6)):
            xmin, ymin = rng.integers(1, 80, size=2)
            w, h = rng.integers(8, 40, size=2)
            gts[image].append((int(rng.integers(num_classes)), [xmin, ymin, xmin + w, ymin + h],
                               bool(rng.random() < 0.25)))
        for cls, box, _ in gts[image]:
            for _ in range(rng.integers(0, 3)):  # 0-2 detections near each gt, sometimes of the wrong class
                jittered = np.array(box) + rng.integers(-4, 5, size=4)
                jittered[2:] = np.maximum(jittered[2:], jittered[:2])
                det_cls = cls if rng.random() < 0.9 else int(rng.integers(num_classes))
                dets.append((image, det_cls, float(rng.random()), jittered.tolist()))
        for _ in range(rng.integers(0, 3)):  # background false positives
            xmin, ymin = rng.integers(1, 100, size=2)
            dets.append((image, int(rng.integers(num_classes)), float(rng.random()),
                         [xmin, ymin, xmin + int(rng.integers(2, 30)), ymin + int(rng.integers(2, 30))]))
    return gts, dets


def evaluate_ours(gts, dets, class_names, iou_threshold=0.5):
    annotations = {
        image: {"boxes": to_xyxy([o[1] for o in objs]), "labels": torch.tensor([o[0] for o in objs], dtype=torch.int64),
                "difficult": torch.tensor([o[2] for o in objs], dtype=torch.bool)}
        for image, objs in gts.items()
    }
    evaluator = VocEvaluator(class_names, annotations.__getitem__, iou_threshold)
    for image in gts:
        mine = [d for d in dets if d[0] == image]
        pred = Instances(to_xyxy([d[3] for d in mine]), torch.tensor([d[2] for d in mine]).float(),
                         torch.tensor([d[1] for d in mine], dtype=torch.int64))
        evaluator.process(batch_of([image]), [pred])
    return evaluator.evaluate()["voc"]


# ---------------------------------------------------------------- tests


def test_iou_equals_devkit_plus_one_convention():
    rng = np.random.default_rng(0)
    a = rng.integers(1, 60, size=(50, 2))
    b = rng.integers(1, 60, size=(40, 2))
    boxes_a = np.concatenate([a, a + rng.integers(0, 30, size=(50, 2))], axis=1)
    boxes_b = np.concatenate([b, b + rng.integers(0, 30, size=(40, 2))], axis=1)
    expected = np.stack([devkit_overlaps(bb.astype(float), boxes_b.astype(float)) for bb in boxes_a])
    ours = box_iou(to_xyxy(boxes_a.tolist()).double(), to_xyxy(boxes_b.tolist()).double())
    np.testing.assert_array_equal(ours.numpy(), expected)  # bit-identical, not just close
    assert (expected > 0).mean() > 0.1  # enough overlapping pairs to mean something


@pytest.mark.parametrize("seed", range(6))
def test_equals_devkit_on_random_integer_boxes(seed):
    gts, dets = random_dataset(seed)
    names = ["a", "b", "c"]
    ours = evaluate_ours(gts, dets, names)
    for k, name in enumerate(names):
        for use_07, key in ((False, "AP"), (True, "AP07")):
            expected = 100 * devkit_voc_eval(gts, dets, k, use_07_metric=use_07)
            assert ours[f"{key}-{name}"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert ours["mAP"] == pytest.approx(np.mean([ours[f"AP-{n}"] for n in names]))


# 3 gts; detections in score order: TP, FP (background), TP, FP (duplicate of the first gt).
HAND_GTS = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
HAND_DETS = [([0, 0, 10, 10], 0.9), ([100, 100, 110, 110], 0.8), ([21, 1, 30, 10], 0.7), ([0, 1, 10, 10], 0.6)]
# recall 1/3, 1/3, 2/3, 2/3; precision 1, 1/2, 2/3, 1/2
HAND_AP = 100 * (1 / 3 * 1 + 1 / 3 * 2 / 3)  # area under the precision envelope
HAND_AP07 = 100 * (4 * 1 + 3 * 2 / 3) / 11  # thresholds 0-0.3 -> 1, 0.4-0.6 -> 2/3, 0.7-1 -> 0


def hand_case(extra_gts=(), extra_dets=()):
    gt_boxes = HAND_GTS + [b for b, _ in extra_gts]
    dets = HAND_DETS + list(extra_dets)
    gt = {"boxes": torch.tensor(gt_boxes, dtype=torch.float32), "labels": torch.zeros(len(gt_boxes), dtype=torch.int64),
          "difficult": torch.tensor([False] * 3 + [d for _, d in extra_gts])}
    pred = Instances(torch.tensor([b for b, _ in dets], dtype=torch.float32),
                     torch.tensor([s for _, s in dets]), torch.zeros(len(dets), dtype=torch.int64))
    return pred, gt


def test_hand_computed_ap():
    pred, gt = hand_case()
    evaluator = VocEvaluator(["thing"], {0: gt}.__getitem__)
    evaluator.process(batch_of([0]), [pred])
    metrics = evaluator.evaluate()["voc"]
    assert metrics["AP-thing"] == pytest.approx(HAND_AP) == pytest.approx(500 / 9)
    assert metrics["AP07-thing"] == pytest.approx(HAND_AP07) == pytest.approx(600 / 11)
    assert metrics["mAP"] == metrics["AP-thing"] and metrics["mAP07"] == metrics["AP07-thing"]


def test_difficult_gt_is_ignored():
    # A difficult gt (not a positive) and a high-scoring detection on it (neither TP nor FP): AP unchanged.
    pred, gt = hand_case(extra_gts=[([60, 0, 70, 10], True)], extra_dets=[([60, 0, 70, 10], 0.85)])
    evaluator = VocEvaluator(["thing"], {0: gt}.__getitem__)
    evaluator.process(batch_of([0]), [pred])
    metrics = evaluator.evaluate()["voc"]
    assert metrics["AP-thing"] == pytest.approx(HAND_AP)
    assert metrics["AP07-thing"] == pytest.approx(HAND_AP07)


def test_iou_threshold_is_strict_and_classes_do_not_mix():
    gt = {"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]), "labels": torch.tensor([0, 1]),
          "difficult": torch.tensor([False, False])}
    # IoU exactly 0.5 with the class-0 gt -> FP; a perfect box with the wrong class -> FP for class 0.
    pred = Instances(torch.tensor([[0.0, 0, 10, 20], [50, 50, 60, 60], [0, 0, 10, 10]]),
                     torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]))
    evaluator = VocEvaluator(["a", "b", "c"], {7: gt}.__getitem__)
    evaluator.process(batch_of([7]), [pred])
    metrics = evaluator.evaluate()["voc"]
    assert metrics["AP-a"] == 0.0 and metrics["AP-b"] == 0.0
    assert math.isnan(metrics["AP-c"])  # no positives: reported as nan, left out of the mean
    assert metrics["mAP"] == 0.0
    table = format_metrics_table({"voc": metrics})
    assert "mAP07" in table and "nan" in table


def test_voc_ap_edge_cases():
    assert voc_ap([], [], use_07_metric=True) == 0.0
    assert voc_ap([], [], use_07_metric=False) == 0.0
    assert voc_ap([1.0], [1.0], use_07_metric=False) == 1.0
    assert voc_ap([1.0], [1.0], use_07_metric=True) == pytest.approx(1.0)
    # recall 0.3 stays below the devkit's third threshold 0.30000000000000004
    assert voc_ap([0.3], [1.0], use_07_metric=True) == pytest.approx(3 / 11)


def test_repeated_image_counts_once_and_reset():
    pred, gt = hand_case()
    evaluator = VocEvaluator(["thing"], {0: gt}.__getitem__)
    evaluator.process(batch_of([0, 0]), [pred, pred])
    assert evaluator.evaluate()["voc"]["AP-thing"] == pytest.approx(HAND_AP)
    evaluator.reset()
    assert math.isnan(evaluator.evaluate()["voc"]["mAP"])

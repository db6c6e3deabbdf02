from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.cocoeval import COCOeval

from detseg.data.datasets.coco import CocoDetection
from detseg.data.datasets.voc import VOCDetection


# pycocotools' mask decoding trips a numpy-2 DeprecationWarning inside its C extension: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_one_based_boxes_and_difficult(voc_case):
    ds = VOCDetection(voc_case, "train")
    assert ds.class_names == ["car", "person"] and ds.category_ids == [1, 2]
    assert ds.image_ids == [0, 1]
    sample = ds[0]
    # xmin=1 ymin=1 xmax=10 ymax=20 -> [0, 0, 10, 20]; the difficult car is left out
    assert torch.equal(sample["boxes"], torch.tensor([[0.0, 0.0, 10.0, 20.0]]))
    assert sample["labels"].tolist() == [1] and sample["iscrowd"].tolist() == [False]
    assert sample["image"].shape == (3, 30, 40) and sample["orig_size"] == (30, 40)
    assert "masks" not in sample
    ann = ds.get_annotation(0)
    np.testing.assert_array_equal(ann["boxes"], [[0, 0, 10, 20], [4, 5, 30, 25]])
    assert ann["labels"].tolist() == [1, 0] and ann["difficult"].tolist() == [False, True]


def test_keep_difficult_and_class_order(voc_case):
    ds = VOCDetection(voc_case, "train", classes=["person", "car"], keep_difficult=True)
    assert ds[0]["labels"].tolist() == [0, 1] and len(ds[0]["boxes"]) == 2
    assert ds.get_image_info(1)[0].endswith("b.jpg") and ds.get_image_info(1)[1] == (30, 40)


def test_to_coco_marks_difficult_as_crowd(voc_case):
    ds = VOCDetection(voc_case, "train")
    coco = ds.to_coco()
    assert [c["id"] for c in coco["categories"]] == ds.category_ids
    assert [img["id"] for img in coco["images"]] == ds.image_ids
    anns = coco["annotations"]
    assert [a["iscrowd"] for a in anns] == [0, 1, 0]
    assert anns[0]["bbox"] == [0, 0, 10, 20] and anns[0]["category_id"] == 2
    assert len(ds.coco.getAnnIds()) == 3 and ds.coco is ds.coco  # built once, lazily


def test_perfect_detections_score_ap_one(voc_case):
    """to_coco() agrees with the samples: ground truth submitted as detections gives AP 1."""
    ds = VOCDetection(voc_case, "train")
    results = []
    for idx in range(len(ds)):
        ann = ds.get_annotation(idx)
        for box, label, difficult in zip(ann["boxes"], ann["labels"], ann["difficult"]):
            if not difficult:
                x1, y1, x2, y2 = box.tolist()
                results.append({"image_id": ds.image_ids[idx], "category_id": ds.category_ids[label],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0})
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(ds.coco, ds.coco.loadRes(results), "bbox")
        evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


def test_shapes_voc_matches_coco(shapes_paths):
    """Same images and objects in both layouts, up to the 1-based VOC rule."""
    for split in ("train", "val"):
        voc = VOCDetection(shapes_paths["voc_root"], split)
        coco = CocoDetection(shapes_paths[f"{split}_json"], shapes_paths[f"{split}_dir"])
        assert len(voc) == len(coco)
        for idx in range(len(voc)):
            ann = voc.get_annotation(idx)
            names = [voc.class_names[i] for i in ann["labels"]]
            anns = coco.coco.imgToAnns[coco.image_ids[idx]]
            expected = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], np.float32)
            np.testing.assert_array_equal(ann["boxes"], expected)
            assert names == [coco.coco.cats[a["category_id"]]["name"] for a in anns]
            assert voc.get_image_info(idx)[1] == coco.get_image_info(idx)[1]

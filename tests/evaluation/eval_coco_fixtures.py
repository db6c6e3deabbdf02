"""A tiny synthetic COCO set (non-contiguous ids, a crowd region, an image without gt) and predictions;
the same ground truth as VOC annotations (crowd as difficult) and as a stand-in detection dataset."""
from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace

import numpy as np
import pycocotools.mask as mask_util
import torch
from pycocotools.coco import COCO

from detseg.structures import Instances

CATEGORY_IDS = [1, 5, 9]
CLASS_NAMES = ["cat", "dog", "bird"]
IMAGE_SIZES = {1: (100, 100), 2: (150, 200), 3: (48, 64), 4: (300, 300)}  # id -> (h, w)
# image id, category id, [x, y, w, h], iscrowd; areas cover small, medium and large.
GT_OBJECTS = [
    (1, 1, [10, 10, 20, 20], 0),
    (1, 5, [40, 30, 50, 60], 0),
    (2, 5, [10, 10, 120, 100], 0),
    (2, 9, [130, 20, 60, 100], 1),
    (2, 9, [20, 115, 25, 25], 0),
    (4, 1, [0, 0, 200, 150], 0),
    (4, 9, [210, 210, 40, 50], 0),
    (4, 1, [250, 20, 30, 30], 0),
]


def rect_mask(image_id: int, xyxy) -> np.ndarray:
    h, w = IMAGE_SIZES[image_id]
    mask = np.zeros((h, w), dtype=np.uint8)
    x1, y1, x2, y2 = (int(round(float(v))) for v in xyxy)
    mask[y1:y2, x1:x2] = 1
    return mask


def make_coco_gt() -> COCO:
    annotations = []
    for ann_id, (image_id, cat_id, (x, y, w, h), crowd) in enumerate(GT_OBJECTS, start=1):
        rle = mask_util.encode(np.asfortranarray(rect_mask(image_id, [x, y, x + w, y + h])))
        rle["counts"] = rle["counts"].decode("ascii")
        annotations.append(
            dict(id=ann_id, image_id=image_id, category_id=cat_id, bbox=[x, y, w, h],
                 area=w * h, iscrowd=crowd, segmentation=rle)
        )
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i, "height": h, "width": w} for i, (h, w) in IMAGE_SIZES.items()],
        "categories": [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, CLASS_NAMES)],
        "annotations": annotations,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def make_instances(image_id: int, boxes, scores, labels) -> Instances:
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    masks = torch.from_numpy(np.stack([rect_mask(image_id, b) for b in boxes.tolist()]))
    return Instances(boxes, torch.tensor(scores, dtype=torch.float32), torch.tensor(labels), masks)


def perfect_predictions() -> dict[int, Instances]:
    """Every non-crowd gt, exact box and mask, score 1."""
    per_image: dict[int, list] = {i: [] for i in IMAGE_SIZES}
    for image_id, cat_id, (x, y, w, h), crowd in GT_OBJECTS:
        if not crowd:
            per_image[image_id].append(([x, y, x + w, y + h], CATEGORY_IDS.index(cat_id)))
    return {
        i: make_instances(i, [b for b, _ in objs], [1.0] * len(objs), [lab for _, lab in objs])
        if objs else Instances.empty()
        for i, objs in per_image.items()
    }


def mixed_predictions() -> dict[int, Instances]:
    """Exact, jittered, duplicate and false-positive detections, some inside the crowd region."""
    j = 1.37  # fractional jitter: bbox floats must survive the conversion unrounded
    return {
        1: make_instances(1, [[10, 10, 30, 30], [40 + j, 30 - j, 90 + j, 90], [60, 60, 80, 80], [12.5, 11, 31, 30.25]],
                          [0.95, 0.8, 0.3, 0.4], [0, 1, 2, 0]),
        2: make_instances(2, [[12, 8 + j, 128, 112], [135, 25, 185, 115], [140.5, 30, 180, 100.75],
                              [20 + j, 116, 44, 140], [0, 0, 30, 30]],
                          [0.9, 0.7, 0.6, 0.5, 0.2], [1, 2, 2, 2, 0]),
        3: make_instances(3, [[5, 5, 40, 30], [1, 2, 10, 20.5]], [0.85, 0.1], [1, 0]),
        4: make_instances(4, [[0, 0, 200, 150], [212, 208 + j, 250, 262], [5, 10, 180, 160]],
                          [0.9, 0.6, 0.55], [0, 2, 0]),
    }


def voc_annotation(image_id: int) -> dict:
    """``GT_OBJECTS`` of one image as a VOC dataset's ``get_annotation`` gives them (crowd as difficult)."""
    objects = [o for o in GT_OBJECTS if o[0] == image_id]
    return {"boxes": torch.tensor([[x, y, x + w, y + h] for _, _, (x, y, w, h), _ in objects]).reshape(-1, 4).float(),
            "labels": torch.tensor([CATEGORY_IDS.index(c) for _, c, _, _ in objects], dtype=torch.int64),
            "difficult": torch.tensor([bool(crowd) for *_, crowd in objects], dtype=torch.bool)}


def detection_dataset() -> SimpleNamespace:
    """What evaluation reads of a detection dataset: the COCO ground truth, label space and VOC annotations."""
    return SimpleNamespace(coco=make_coco_gt(), category_ids=CATEGORY_IDS, class_names=CLASS_NAMES,
                           get_annotation=voc_annotation)

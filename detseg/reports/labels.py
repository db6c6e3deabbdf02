"""What the training labels look like: instances per class, box sizes (for labels.json and its plots)."""
from __future__ import annotations

import numpy as np

MAX_BOXES = 20_000  # box sizes kept for the plots: a seeded sample keeps labels.json small on COCO


def label_statistics(dataset, max_boxes: int = MAX_BOXES, seed: int = 0) -> dict | None:
    """Counts over every non-crowd box of ``dataset.coco`` in the label space, sizes of a sample of them.

    Widths and heights are pixels of the original images; VOC's "difficult" objects (crowd in its
    COCO view) are left out as in training. An image-classification set (``label_of(image_id)``) gets
    images per class and no boxes; ``None`` for a dataset with neither (semantic VOC).
    """
    coco = getattr(dataset, "coco", None)
    if coco is None:
        return _image_label_statistics(dataset)
    label_of = {cat_id: k for k, cat_id in enumerate(dataset.category_ids)}
    anns = [a for a in coco.anns.values() if not a.get("iscrowd", 0) and a.get("category_id") in label_of]
    labels = np.array([label_of[a["category_id"]] for a in anns], np.int64)
    sizes = np.array([a["bbox"][2:4] for a in anns], np.float64).reshape(-1, 2)
    counts = np.bincount(labels, minlength=len(label_of))
    if len(anns) > max_boxes:
        keep = np.sort(np.random.default_rng(seed).choice(len(anns), max_boxes, replace=False))
        labels, sizes = labels[keep], sizes[keep]
    return {
        "names": list(dataset.class_names),
        "counts": counts.tolist(),
        "num_images": len(coco.imgs),
        "boxes": {"width": sizes[:, 0].round(2).tolist(), "height": sizes[:, 1].round(2).tolist(),
                  "label": labels.tolist(), "sampled_from": len(anns)},
    }


def _image_label_statistics(dataset) -> dict | None:
    if not callable(getattr(dataset, "label_of", None)):
        return None
    labels = np.array([dataset.label_of(i) for i in dataset.image_ids], np.int64)
    counts = np.bincount(labels, minlength=len(dataset.class_names))
    return {"names": list(dataset.class_names), "counts": counts.tolist(), "num_images": len(labels)}

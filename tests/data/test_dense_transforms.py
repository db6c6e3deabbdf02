"""SSD / YOLO augmentation: zoom-out and IoU crop keep boxes on their pixels; fixed-size output."""
import random

import numpy as np
import pytest
import torch

from detseg.config import load_config
from detseg.data.dense_transforms import RandomIoUCrop, ZoomOut, build_dense_transforms
from detseg.data.transforms import DetectionTransform

CONFIG = "configs/ssd/shapes.yaml"


def _image_with_squares():
    """Two solid squares of distinct colours on black; boxes are exactly their pixels."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[20:60, 30:70] = (255, 0, 0)
    image[70:110, 100:150] = (0, 255, 0)
    boxes = np.array([[30, 20, 70, 60], [100, 70, 150, 110]], np.float32)
    return image, boxes, np.array([0, 1]), np.zeros(2, bool)


def _box_colours(image, boxes):
    return [image[int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2].reshape(-1, 3).mean(0)
            for x1, y1, x2, y2 in boxes]


def test_zoom_out_keeps_every_box_on_its_object():
    torch.manual_seed(0)
    transform = DetectionTransform([ZoomOut(max_ratio=3.0, p=1.0)])
    image, boxes, labels, crowd = _image_with_squares()
    for _ in range(5):
        out, out_boxes, out_labels, _, _ = transform(image, boxes, labels, crowd)
        assert out.shape[0] >= 120 and out.shape[1] >= 160
        assert out.shape[0] / out.shape[1] == pytest.approx(120 / 160, rel=0.02)
        assert out_labels.tolist() == [0, 1]
        np.testing.assert_allclose(out_boxes[:, 2:] - out_boxes[:, :2], boxes[:, 2:] - boxes[:, :2], atol=0.05)
        red, green = _box_colours(out, out_boxes)
        np.testing.assert_allclose(red, [255, 0, 0], atol=1)
        np.testing.assert_allclose(green, [0, 255, 0], atol=1)


def test_iou_crop_respects_the_minimum_iou_and_drops_objects_whose_centre_is_cut_off():
    torch.manual_seed(1)
    crop = RandomIoUCrop(min_ious=[0.5], min_scale=0.3)
    transform = DetectionTransform([crop])
    image, boxes, labels, crowd = _image_with_squares()
    cropped_once = False
    for _ in range(20):
        out, out_boxes, out_labels, _, _ = transform(image, boxes, labels, crowd)
        cropped_once |= out.shape[:2] != image.shape[:2]
        assert 1 <= len(out_boxes) <= 2
        for box, label in zip(out_boxes, out_labels):
            colour = [255, 0, 0] if label == 0 else [0, 255, 0]
            x1, y1, x2, y2 = box.astype(int)
            centre = out[(y1 + y2) // 2, (x1 + x2) // 2]
            np.testing.assert_array_equal(centre, colour)  # a kept box still covers its own square
    assert cropped_once


def test_iou_crop_patch_sampling_follows_the_paper():
    crop = RandomIoUCrop(min_scale=0.3)
    crop.py_random = random.Random(0)
    for _ in range(200):
        patch = crop._sample_patch()
        if patch is None:
            continue
        w, h = patch[2] - patch[0], patch[3] - patch[1]
        assert 0.3 <= w <= 1 and 0.3 <= h <= 1 and 0.5 <= w / h <= 2
        assert patch[0] >= 0 and patch[1] >= 0 and patch[2] <= 1 and patch[3] <= 1


@pytest.mark.parametrize("augment", ["ssd", "ssdlite", "yolo", "default"])
def test_training_pipelines_give_the_fixed_size(augment):
    torch.manual_seed(2)
    data_cfg = load_config(CONFIG, [f"data.augment={augment}", "data.fixed_size=[96, 128]"]).data
    transform = build_dense_transforms(data_cfg, train=True)
    image, boxes, labels, crowd = _image_with_squares()
    for _ in range(5):
        out, out_boxes, out_labels, out_crowd, _ = transform(image, boxes, labels, crowd)
        assert out.shape == (96, 128, 3)
        assert len(out_boxes) == len(out_labels) == len(out_crowd)
        assert np.all(out_boxes >= 0) and np.all(out_boxes[:, 0::2] <= 128) and np.all(out_boxes[:, 1::2] <= 96)


def test_evaluation_only_resizes():
    data_cfg = load_config(CONFIG, ["data.fixed_size=[60, 80]"]).data
    image, boxes, labels, crowd = _image_with_squares()
    out, out_boxes, _, _, _ = build_dense_transforms(data_cfg, train=False)(image, boxes, labels, crowd)
    assert out.shape == (60, 80, 3)
    np.testing.assert_allclose(out_boxes, boxes / 2, atol=1e-3)


def test_unknown_augment_names_the_choices():
    data_cfg = load_config(CONFIG).data
    data_cfg.augment = "mosaic"  # the loader refuses it already (tests/config); the builder checks too
    with pytest.raises(ValueError, match="data.augment"):
        build_dense_transforms(data_cfg, train=True)

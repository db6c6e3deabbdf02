from __future__ import annotations

import numpy as np
import pytest
import torch

from detseg.data.transforms import build_transforms, resized_shape


def _target(n_masks_hw: tuple[int, int] = (200, 300)):
    boxes = np.array([[10, 20, 110, 70], [200, 100, 290, 180]], np.float32)
    labels, iscrowd = np.array([3, 5]), np.array([False, True])
    masks = np.zeros((2, *n_masks_hw), np.uint8)
    masks[0, 20:70, 10:110] = 1
    masks[1, 100:180, 200:290] = 1
    return boxes, labels, iscrowd, masks


def _image(h: int = 200, w: int = 300) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("hw, min_size, max_size, expected", [
    ((200, 300), 100, 120, (80, 120)),     # long side caps: scale 0.4
    ((200, 300), 100, 1000, (100, 150)),   # short side rules: scale 0.5
    ((480, 640), 800, 1333, (800, 1067)),  # 1066.67 rounds up
    ((640, 480), 800, 1333, (1067, 800)),
])
def test_resize_rule(hw, min_size, max_size, expected):
    assert resized_shape(hw, min_size, max_size) == expected


def test_resize_scales_image_boxes_masks():
    boxes, labels, iscrowd, masks = _target()
    image, out_boxes, out_labels, out_crowd, out_masks = build_transforms(False, 100, 120)(
        _image(), boxes, labels, iscrowd, masks)
    assert image.shape == (80, 120, 3) and image.dtype == np.uint8
    np.testing.assert_allclose(out_boxes, boxes * 0.4, atol=1e-3)
    assert out_boxes.dtype == np.float32
    assert out_labels.tolist() == [3, 5] and out_crowd.tolist() == [False, True]
    assert out_masks.shape == (2, 80, 120) and set(np.unique(out_masks)) == {0, 1}
    assert out_masks[0, 8:28, 4:44].all() and out_masks[0].sum() == 20 * 40


def test_flip_mirrors_boxes_and_masks():
    boxes, labels, iscrowd, masks = _target()
    flip = build_transforms(True, 200, 1000, flip_prob=1.0)
    image, out_boxes, _, _, out_masks = flip(_image(), boxes, labels, iscrowd, masks)
    expected = boxes.copy()
    expected[:, [0, 2]] = 300 - boxes[:, [2, 0]]
    np.testing.assert_allclose(out_boxes, expected, atol=1e-3)
    np.testing.assert_array_equal(image, _image()[:, ::-1])
    np.testing.assert_array_equal(out_masks, masks[:, :, ::-1])


def test_boxes_are_clipped_and_thin_ones_dropped_with_their_rows():
    boxes = np.array([[-10, -5, 50, 40],       # clipped to [0, 0, 50, 40]
                      [20, 20, 20.5, 60],      # 0.5 px wide: dropped
                      [250, 150, 400, 260],    # clipped to [250, 150, 300, 200]
                      [299.5, 10, 330, 50],    # 0.5 px wide once clipped: dropped
                      [100, 100, 101.5, 150]], np.float32)  # 1.5 px, 0.6 px after the 0.4 resize: dropped
    labels, iscrowd = np.arange(5), np.array([False, True, True, False, False])
    masks = np.stack([np.full((200, 300), i + 1, np.uint8) for i in range(5)])
    keep_scale = build_transforms(False, 200, 1000)
    _, out, out_labels, out_crowd, out_masks = keep_scale(_image(), boxes, labels, iscrowd, masks)
    np.testing.assert_allclose(out, [[0, 0, 50, 40], [250, 150, 300, 200], [100, 100, 101.5, 150]], atol=1e-3)
    assert out_labels.tolist() == [0, 2, 4] and out_crowd.tolist() == [False, True, False]
    assert [int(m[0, 0]) for m in out_masks] == [1, 3, 5]  # masks follow their boxes
    _, out, out_labels, _, out_masks = build_transforms(False, 80, 1000)(_image(), boxes, labels, iscrowd, masks)
    assert out_labels.tolist() == [0, 2] and len(out) == 2 and len(out_masks) == 2


@pytest.mark.parametrize("train", [True, False])
def test_no_boxes_pass_through(train):
    transform = build_transforms(train, [100, 120], 200, color_jitter=0.3, with_masks=True)
    empty = np.zeros((0, 4), np.float32)
    image, boxes, labels, iscrowd, masks = transform(
        _image(), empty, np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, 200, 300), np.uint8))
    assert boxes.shape == (0, 4) and labels.shape == (0,) and iscrowd.shape == (0,)
    assert masks.shape == (0, *image.shape[:2]) and masks.dtype == np.uint8
    no_masks = build_transforms(train, 100, 200)
    _, boxes, _, _, masks = no_masks(_image(), empty, np.zeros(0, np.int64), np.zeros(0, bool))
    assert boxes.shape == (0, 4) and boxes.dtype == np.float32 and masks is None


def test_multiscale_choice_and_eval_size():
    train = build_transforms(True, [100, 150], 1000, flip_prob=0.0)
    target = _target()
    shorts = {train(_image(), *target)[0].shape[0] for _ in range(30)}
    assert shorts == {100, 150}
    assert build_transforms(False, [100, 150], 1000)(_image(), *target)[0].shape[:2] == (150, 225)


def test_randomness_follows_torch_seed():
    def run() -> list[float]:
        transform = build_transforms(True, [100, 120, 140], 1000, color_jitter=0.4)
        return [float(transform(_image(), *_target())[1][0, 0]) for _ in range(8)]

    torch.manual_seed(1)
    first = run()
    torch.manual_seed(1)
    assert run() == first
    torch.manual_seed(2)
    assert run() != first


def test_color_jitter_changes_pixels_not_geometry():
    boxes, labels, iscrowd, masks = _target()
    jitter = build_transforms(True, 200, 1000, flip_prob=0.0, color_jitter=0.5)
    image, out_boxes, *_ = jitter(_image(), boxes, labels, iscrowd, masks)
    assert image.shape == (200, 300, 3) and not np.array_equal(image, _image())
    np.testing.assert_allclose(out_boxes, boxes, atol=1e-3)


def test_with_masks_requires_masks():
    with pytest.raises(ValueError, match="masks"):
        build_transforms(False, 100, 200, with_masks=True)(_image(), *_target()[:3])

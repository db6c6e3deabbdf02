"""SSD default boxes: the paper's count, scales and ratios, and torchvision's boxes for its configs."""
import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from detseg.models.dense.default_boxes import DefaultBoxes, linear_scales

SSD300_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
SSD300_GRIDS = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
SSD300_STEPS = [8, 16, 32, 64, 100, 300]


def test_paper_scales_are_linear_from_0_2_to_0_9():
    scales = linear_scales(6, 0.2, 0.9)
    assert scales == pytest.approx([0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.0])


def test_ssd300_has_8732_boxes():
    boxes = DefaultBoxes(SSD300_RATIOS, linear_scales(6, 0.2, 0.9), SSD300_STEPS)
    assert boxes.num_per_cell() == [4, 6, 6, 6, 4, 4]
    assert boxes(SSD300_GRIDS, (300, 300), "cpu").shape == (8732, 4)


def test_box_shapes_follow_scale_and_ratio():
    """Per cell: s_k square, sqrt(s_k s_k+1) square, then (s sqrt(r), s / sqrt(r)) and its transpose per ratio."""
    scales = linear_scales(6, 0.2, 0.9)
    boxes = DefaultBoxes(SSD300_RATIOS, scales, SSD300_STEPS)(SSD300_GRIDS, (300, 300), "cpu")
    first_cell = boxes[:4]  # conv4_3, cell (0, 0): scale 0.2, ratios 1, 1', 2, 1/2
    wh = (first_cell[:, 2:] - first_cell[:, :2]) / 300
    s, s_extra = 0.2, math.sqrt(0.2 * 0.34)
    expected = [[s, s], [s_extra, s_extra], [s * math.sqrt(2), s / math.sqrt(2)], [s / math.sqrt(2), s * math.sqrt(2)]]
    torch.testing.assert_close(wh, torch.tensor(expected), atol=1e-6, rtol=1e-5)
    offset = 4 * 38 * 38  # fc7's first cell: scale 0.34 with ratio 3 as the last pair
    wh = (boxes[offset : offset + 6, 2:] - boxes[offset : offset + 6, :2]) / 300
    r3 = math.sqrt(3)
    torch.testing.assert_close(wh[4:], torch.tensor([[0.34 * r3, 0.34 / r3], [0.34 / r3, 0.34 * r3]]),
                               atol=1e-6, rtol=1e-5)


def test_centres_step_over_the_input():
    boxes = DefaultBoxes(SSD300_RATIOS, linear_scales(6, 0.2, 0.9), SSD300_STEPS)(SSD300_GRIDS, (300, 300), "cpu")
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    # conv4_3 cell (row 0, column 1) and (row 1, column 0): centres (1.5 * 8, 0.5 * 8) and (4, 12)
    torch.testing.assert_close(centres[4], torch.tensor([12.0, 4.0]))
    torch.testing.assert_close(centres[4 * 38], torch.tensor([4.0, 12.0]))
    # the last map, step 300: one centre in the middle
    torch.testing.assert_close(centres[-1], torch.tensor([150.0, 150.0]))


def test_without_steps_centres_tile_each_map():
    boxes = DefaultBoxes([[2]], [0.5, 0.9], None)([(4, 2)], (200, 100), "cpu")
    centres = ((boxes[:, :2] + boxes[:, 2:]) / 2)[::4]  # one per cell
    expected = [[25.0, 25.0], [75.0, 25.0], [25.0, 75.0], [75.0, 75.0], [25.0, 125.0], [75.0, 125.0],
                [25.0, 175.0], [75.0, 175.0]]
    torch.testing.assert_close(centres, torch.tensor(expected))


@pytest.mark.parametrize("config", [
    dict(ratios=SSD300_RATIOS, kwargs=dict(scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=SSD300_STEPS),
         grids=SSD300_GRIDS, size=300),
    dict(ratios=[[2, 3]] * 6, kwargs=dict(min_ratio=0.2, max_ratio=0.95),
         grids=[(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)], size=320),
], ids=["ssd300_vgg16", "ssdlite320"])
def test_equal_to_torchvision(config):
    tv = DefaultBoxGenerator(config["ratios"], **config["kwargs"])
    size = config["size"]
    maps = [torch.zeros(1, 1, *g) for g in config["grids"]]
    expected = tv(ImageList(torch.zeros(1, 3, size, size), [(size, size)]), maps)[0]
    ours = DefaultBoxes(config["ratios"], tv.scales, config["kwargs"].get("steps"))
    ours = ours(config["grids"], (size, size), "cpu")
    assert torch.equal(ours, expected)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="one scale per feature map plus one"):
        DefaultBoxes([[2], [2]], [0.2, 0.5])
    with pytest.raises(ValueError, match="steps"):
        DefaultBoxes([[2], [2]], [0.2, 0.5, 0.9], [8])

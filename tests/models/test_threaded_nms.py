"""The threaded batched NMS returns torchvision's batched_nms tensor, and hands small or traced inputs to it."""
import pytest
import torch
from torchvision.ops import batched_nms as torchvision_batched_nms

from detseg.models.layers import threaded_nms


def candidates(num: int, num_groups: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + torch.rand(num, 2, generator=g) * 60 + 1], 1)
    scores = torch.rand(num, generator=g).round(decimals=2)  # ties, as a softmax over few values gives
    return boxes, scores, torch.randint(0, num_groups, (num,), generator=g)


@pytest.mark.parametrize("num, num_groups", [(3000, 90), (2000, 3), (1500, 1)])
def test_threaded_groups_give_torchvisions_indices(two_threads, num, num_groups):
    boxes, scores, groups = candidates(num, num_groups)
    assert boxes.numel() > threaded_nms.VANILLA_ABOVE  # the threaded path is the one under test
    ours = threaded_nms.batched_nms(boxes, scores, groups, 0.5)
    assert torch.equal(ours, torchvision_batched_nms(boxes, scores, groups, 0.5))
    assert 0 < len(ours) < num


def test_small_inputs_and_one_thread_go_to_torchvision(two_threads, monkeypatch):
    calls = []
    monkeypatch.setattr(threaded_nms, "op_executor", lambda n: calls.append(n))  # would fail if reached
    boxes, scores, groups = candidates(800, 5)
    assert torch.equal(threaded_nms.batched_nms(boxes, scores, groups, 0.5),
                       torchvision_batched_nms(boxes, scores, groups, 0.5))
    torch.set_num_threads(1)
    boxes, scores, groups = candidates(3000, 5)
    assert torch.equal(threaded_nms.batched_nms(boxes, scores, groups, 0.5),
                       torchvision_batched_nms(boxes, scores, groups, 0.5))
    assert calls == []


def test_no_boxes(two_threads):
    empty = threaded_nms.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.int64

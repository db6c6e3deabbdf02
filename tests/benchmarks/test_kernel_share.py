"""The share of a call spent in convolution and matmul kernels, and the bounds it puts on any twin."""
import pytest
import torch

from detseg.benchmarks.kernel_share import bounds, is_kernel, kernel_share


def test_a_convolution_stack_is_mostly_kernel_time_and_elementwise_work_is_none():
    conv = torch.nn.Sequential(*[torch.nn.Conv2d(64, 64, 3, padding=1) for _ in range(4)]).eval()
    x = torch.rand(1, 64, 64, 64)
    with torch.no_grad():
        heavy = kernel_share(lambda: conv(x))
        light = kernel_share(lambda: (x * 2 + 1).relu())
    assert heavy["share"] > 0.5 and heavy["kernel_ms"] <= heavy["total_ms"]
    assert light["share"] == 0.0 and light["kernel_ms"] == 0.0 and light["total_ms"] > 0


def test_training_counts_backward_kernels():
    layer = torch.nn.Linear(256, 256)
    x = torch.rand(512, 256)
    result = kernel_share(lambda: layer(x).sum().backward())
    assert result["share"] > 0 and is_kernel("aten::mm") and is_kernel("aten::convolution_backward")
    assert not is_kernel("aten::add_")


def test_bounds_are_the_reference_share_and_its_inverse():
    b = bounds({"share": 0.8}, {"share": 0.7})
    assert b["train_ratio_max"] == pytest.approx(1.25) and b["latency_ratio_min"] == 0.7

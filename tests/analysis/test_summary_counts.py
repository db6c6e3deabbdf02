"""detseg.analysis on tiny models: the parameter, FLOP and receptive-field numbers CNN courses teach."""
import math

import pytest
import torch
from torch import nn

from detseg.analysis import ReceptiveField, chain, summarize


def _conv(cin, cout, k, **kw):
    return nn.Conv2d(cin, cout, k, padding=kw.pop("padding", k // 2), bias=kw.pop("bias", False), **kw)


def _summary(model, size=16, channels=128):
    return summarize(model, torch.zeros(1, channels, size, size))


def test_two_stacked_3x3_convs_see_5x5_with_fewer_parameters_than_one_5x5():
    stacked = _summary(nn.Sequential(_conv(128, 128, 3), nn.ReLU(), _conv(128, 128, 3)))
    single = _summary(nn.Sequential(_conv(128, 128, 5)))
    assert stacked.total_params == 2 * 128 * 128 * 9 == 294_912
    assert single.total_params == 128 * 128 * 25 == 409_600
    assert stacked.row("2").receptive_field == single.row("0").receptive_field == 5
    assert stacked.row("0").receptive_field == 3 and stacked.row("2").stride == 1
    assert chain([(3, 1, 1)] * 3).size == (7, 7)  # VGG's argument: three 3x3 see a 7x7


def test_1x1_bottleneck_costs_less_than_a_plain_3x3():
    bottleneck = _summary(nn.Sequential(_conv(128, 32, 1), _conv(32, 128, 3)))
    plain = _summary(nn.Sequential(_conv(128, 128, 3)))
    assert bottleneck.total_params == 128 * 32 + 32 * 128 * 9 == 40_960
    assert plain.total_params == 147_456
    assert [r.params for r in bottleneck.rows] == [4_096, 36_864]


def test_flops_are_flop_counter_modes_two_per_multiply_add():
    s = summarize(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1)), torch.zeros(1, 3, 8, 8))
    macs = 8 * 8 * 8 * 3 * 9  # output pixels x output channels x (input channels x kernel)
    assert s.total_flops == s.row("0").flops == 2 * macs == 27_648
    assert s.row("0").output == [1, 8, 8, 8] and s.input_shape == [1, 3, 8, 8]
    linear = summarize(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), torch.zeros(2, 3, 2, 2))
    assert linear.row("1").flops == 2 * 2 * 12 * 5


def test_rows_partition_the_parameters_at_every_depth():
    model = nn.Sequential(
        nn.Sequential(_conv(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(_conv(8, 16, 3, stride=2), nn.Sequential(_conv(16, 16, 1, bias=True))),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
    total = sum(p.numel() for p in model.parameters())
    for depth in (None, 1, 2, 3):
        s = summarize(model, torch.zeros(1, 3, 16, 16), max_depth=depth)
        assert s.total_params == s.trainable_params == total
        assert sum(r.params for r in s.rows) == total, depth
        assert sum(r.flops for r in s.rows) == s.total_flops > 0, depth
    assert [r.name for r in summarize(model, torch.zeros(1, 3, 16, 16), max_depth=1).rows] == ["0", "1", "2", "3", "4"]
    model[0][0].weight.requires_grad_(False)
    model.train()[0][1].eval()  # summarize runs in eval mode and gives every module its own mode back
    assert summarize(model, torch.zeros(1, 3, 16, 16)).trainable_params == total - 8 * 3 * 9
    assert [m.training for m in model.modules()] == [m is not model[0][1] for m in model.modules()]


def test_ops_a_module_runs_itself_get_an_own_row_so_flops_add_up():
    class Folded(nn.Module):  # uses its child's weights without calling it, as folded-BN blocks do
        def __init__(self):
            super().__init__()
            self.conv = _conv(3, 4, 3)
            self.scale = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return nn.functional.conv2d(x, self.conv.weight * self.scale[:, None, None, None], padding=1)

    model = nn.Sequential(Folded(), _conv(4, 4, 1))
    s = summarize(model, torch.zeros(1, 3, 8, 8))
    assert [(r.name, r.type, r.params, r.flops) for r in s.rows] == [
        ("0", "Folded (own)", 4, 2 * 64 * 4 * 27), ("0.conv", "Conv2d", 108, 0), ("1", "Conv2d", 16, 2 * 64 * 4 * 4)]
    assert s.row("0").receptive_field == 3 and s.row("0.conv").output is None
    assert sum(r.flops for r in s.rows) == s.total_flops and sum(r.params for r in s.rows) == s.total_params


def test_receptive_field_recurrence_with_stride_and_dilation():
    s = summarize(nn.Sequential(_conv(3, 4, 3, stride=2), _conv(4, 4, 3, dilation=2, padding=2),
                                nn.MaxPool2d(2), _conv(4, 4, 3)), torch.zeros(1, 3, 32, 32))
    # r: 3 -> 3 + 2*2*2 = 11 -> 11 + 1*2 = 13 -> 13 + 2*4 = 21; j: 2, 2, 4, 4
    assert [(r.receptive_field, r.stride) for r in s.rows] == [(3, 2), (11, 2), (13, 4), (21, 4)]
    assert chain([(3, 2, 1), (3, 1, 2), (2, 2, 1), (3, 1, 1)]) == ReceptiveField((21, 21), (4, 4))


class _Residual(nn.Module):
    """x + conv3x3(conv3x3(x)) beside a 1x1 shortcut: the theoretical field is the longer branch."""

    def __init__(self):
        super().__init__()
        self.branch = nn.Sequential(_conv(4, 4, 3), _conv(4, 4, 3))
        self.shortcut = _conv(4, 4, 1)

    def forward(self, x):
        return self.branch(x) + self.shortcut(x)


class _Inception(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1, self.b5 = _conv(4, 2, 1), _conv(4, 2, 5)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b5(x)], 1)


@pytest.mark.parametrize("block, expected", [(_Residual(), 5), (_Inception(), 5)])
def test_branches_join_with_the_largest_field(block, expected):
    model = nn.Sequential(block, nn.ReLU())
    s = summarize(model, torch.zeros(1, 4, 16, 16))
    assert s.row("1").receptive_field == expected and s.row("1").stride == 1


def test_global_pool_gate_and_fc_see_the_whole_input_flatten_is_not_spatial():
    class Gate(nn.Module):  # squeeze-and-excitation: a global pool scales every position
        def forward(self, x):
            return x * x.mean((2, 3), keepdim=True).sigmoid()

    s = summarize(nn.Sequential(_conv(3, 4, 3), Gate(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)),
                  torch.zeros(1, 3, 8, 8))
    assert s.row("0").receptive_field == 3
    assert math.isinf(s.row("1").receptive_field) and math.isinf(s.row("3").receptive_field)
    plain = summarize(nn.Sequential(_conv(3, 4, 3), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)), torch.zeros(1, 3, 8, 8))
    assert plain.row("1").receptive_field is None  # a flattened vector has no spatial field...
    assert math.isinf(plain.row("2").receptive_field)  # ...but every fc output reads all of it
    assert s.to_dict()["rows"][3]["receptive_field"] == "global"


def test_upsampling_and_transposed_convs_divide_the_stride():
    s = summarize(nn.Sequential(_conv(3, 4, 3, stride=4), nn.Upsample(scale_factor=2),
                                nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1)), torch.zeros(1, 3, 32, 32))
    assert (s.row("0").receptive_field, s.row("0").stride) == (3, 4)
    assert (s.row("1").receptive_field, s.row("1").stride) == (3, 2)  # nearest: same field, half the jump
    # each output reads floor((4 - 1) / 2) + 1 = 2 neighbouring inputs, 2 apart: 3 + 1 * 2
    assert (s.row("2").receptive_field, s.row("2").stride) == (5, 1)


def test_layers_never_called_are_listed_without_shape_or_flops():
    class Partial(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = _conv(3, 4, 3), _conv(4, 4, 3)

        def forward(self, x):
            return self.used(x)

    s = summarize(Partial(), torch.zeros(1, 3, 8, 8))
    assert s.row("unused").output is None and s.row("unused").flops == 0 and s.row("unused").params == 144

"""The anatomy arithmetic courses teach, measured on the backbones: the 1x1 bottleneck saving of an
inception module, DenseNet's k0 + l * k channels, the SE gate's 2 C^2 / r weights, LeNet-5's layers."""
import pytest
import torch
from torch import nn
from torchvision.models.googlenet import Inception

from detseg.analysis import summarize
from detseg.analysis.networks import build_named_network, synthetic_batch
from detseg.config import load_config
from detseg.models.build import build_model


def _summarise_backbone(name: str, size: int = 224, max_depth=None):
    with torch.device("meta"):
        net = build_named_network(name)
    return summarize(net, torch.zeros(1, 3, size, size, device="meta"), max_depth=max_depth)


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)


class _NaiveInception(nn.Module):
    """inception (3a)'s branches without their 1x1 reductions: 1x1, 3x3 and 5x5 straight from the input."""

    def __init__(self):
        super().__init__()
        self.b1, self.b3, self.b5, self.pool = _conv(192, 64, 1), _conv(192, 128, 3), _conv(192, 32, 5), nn.MaxPool2d(3, 1, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


def test_inception_3a_1x1_reductions_save_most_of_the_parameters():
    plain = lambda cin, cout, kernel_size, padding=0: _conv(cin, cout, kernel_size)  # noqa: E731 - no BN
    reduced = Inception(192, 64, 96, 128, 16, 32, 32, conv_block=plain)
    reduced.branch3[1] = _conv(16, 32, 5)  # the paper's 5x5 (torchvision's branch uses a 3x3 here)
    x = torch.zeros(1, 192, 28, 28)
    with_1x1, naive = summarize(reduced, x), summarize(_NaiveInception(), x)
    # 1x1: 192*64; 3x3: 192*96 + 9*96*128; 5x5: 192*16 + 25*16*32; pool projection: 192*32
    assert with_1x1.total_params == 12_288 + 129_024 + 15_872 + 6_144 == 163_328
    # 192*64 + 9*192*128 + 25*192*32, and the pool branch passes all 192 channels on (416 out, not 256)
    assert naive.total_params == 12_288 + 221_184 + 153_600 == 387_072
    assert reduced(x).shape[1] == 256 and _NaiveInception()(x).shape[1] == 416
    # GoogLeNet as torchvision builds it: BN after each conv, a 3x3 in the "5x5" branch
    googlenet = _summarise_backbone("googlenet", max_depth=1)
    assert googlenet.row("inception3a").params == 12_288 + 129_024 + 3_072 + 4_608 + 6_144 + 2 * 368 == 155_872


def test_densenet121_blocks_grow_by_k_per_layer():
    summary = _summarise_backbone("densenet121")
    k, layers, k0 = 32, (6, 12, 24, 16), 64
    expected, channels = [], k0
    for i, count in enumerate(layers):
        channels += count * k
        expected.append(channels)
        channels //= 2  # the transition's 1x1 conv halves them
    assert expected == [256, 512, 1024, 1024]
    assert [(f.name, f.channels, f.stride) for f in summary.features] == [
        ("s4", 256, 4), ("s8", 512, 8), ("s16", 1024, 16), ("s32", 1024, 32)]
    assert summary.row("features.denseblock1.denselayer6.conv2").output[1] == k


@pytest.mark.parametrize("name, block, channels", [("se_resnet50", "layer1.0", 256), ("se_resnet50", "layer4.2", 2048),
                                                   ("se_resnext50_32x4d", "layer3.0", 1024)])
def test_se_gate_adds_two_c_squared_over_r(name, block, channels):
    summary = _summarise_backbone(name)
    r = 16
    fc1, fc2 = summary.row(f"{block}.se.fc1"), summary.row(f"{block}.se.fc2")
    assert fc1.params + fc2.params == 2 * channels * channels // r + channels // r + channels  # weights + biases
    assert fc1.output[1:] == [channels // r, 1, 1] and fc2.output[1:] == [channels, 1, 1]


def test_lenet5_per_layer_parameters():
    cfg = load_config("configs/classification/shape_crops_resnet18.yaml", ["model.backbone.name=lenet5",
                                                                          "model.backbone.width=1.0"])
    model = build_model(cfg.model, 10)
    summary = summarize(model, synthetic_batch(32, 32))
    rows = {name: summary.row(name) for name in ("backbone.c1", "backbone.c3", "backbone.c5", "backbone.f6", "fc")}
    assert [r.params for r in rows.values()] == [156, 2_416, 48_120, 10_164, 850]
    assert [r.output[1:] for r in rows.values()] == [[6, 28, 28], [16, 10, 10], [120, 1, 1], [84, 1, 1], [10]]
    assert summary.total_params == 61_706

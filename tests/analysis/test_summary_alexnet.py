"""The original two-GPU AlexNet (alexnet_v1): the paper's layer sizes, parameter counts and the backbone contract."""
import pytest
import torch
from torch import nn

from detseg.analysis import summarize
from detseg.analysis.networks import build_named_network, synthetic_batch
from detseg.config import load_config
from detseg.config.schema import BackboneConfig
from detseg.models.build import build_backbone
from detseg.models.backbones.alexnet_v1 import AlexNetV1
from detseg.models.build import build_model

CONVS = {"conv1": "features.0", "conv2": "features.4", "conv3": "features.8", "conv4": "features.10",
         "conv5": "features.12"}
FCS = {"fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}
PAPER_PARAMS = {  # weights + biases; conv2/4/5 read half their input channels (groups=2)
    "conv1": 96 * 3 * 11 * 11 + 96, "conv2": 256 * 48 * 5 * 5 + 256, "conv3": 384 * 256 * 3 * 3 + 384,
    "conv4": 384 * 192 * 3 * 3 + 384, "conv5": 256 * 192 * 3 * 3 + 256,
    "fc6": 256 * 6 * 6 * 4096 + 4096, "fc7": 4096 * 4096 + 4096, "fc8": 4096 * 1000 + 1000,
}


@pytest.fixture(scope="module")
def alexnet_summary():
    with torch.device("meta"):  # shapes, parameters and FLOPs need no values
        net = build_named_network("alexnet_v1", with_classifier=True)
    return summarize(net, torch.zeros(1, 3, 227, 227, device="meta"))


def test_layer_parameters_are_the_papers(alexnet_summary):
    rows = {layer: alexnet_summary.row(name).params for layer, name in {**CONVS, **FCS}.items()}
    assert rows == PAPER_PARAMS
    assert [rows[c] for c in CONVS] == [34_944, 307_456, 885_120, 663_936, 442_624]
    assert [rows[f] for f in FCS] == [37_752_832, 16_781_312, 4_097_000]
    assert alexnet_summary.total_params == sum(PAPER_PARAMS.values()) == 60_965_224
    fc_share = sum(rows[f] for f in FCS) / alexnet_summary.total_params
    assert fc_share > 0.96  # 58.6M of the 61M parameters are in the fc layers


def test_map_sizes_and_receptive_fields_at_227(alexnet_summary):
    shapes = {layer: alexnet_summary.row(name).output for layer, name in CONVS.items()}
    assert shapes == {"conv1": [1, 96, 55, 55], "conv2": [1, 256, 27, 27], "conv3": [1, 384, 13, 13],
                      "conv4": [1, 384, 13, 13], "conv5": [1, 256, 13, 13]}
    pool5 = alexnet_summary.row("features.14")
    assert pool5.output == [1, 256, 6, 6]
    # 11 (conv1, j 4) -> 19 (pool, j 8) -> 51 -> 67 (pool, j 16) -> 99 -> 131 -> 163 -> 195 (pool5, j 32)
    assert [alexnet_summary.row(n).receptive_field for n in CONVS.values()] == [11, 51, 99, 131, 163]
    assert (pool5.receptive_field, pool5.stride) == (195, 32)
    assert alexnet_summary.row("classifier.6").output == [1, 1000]


def test_architecture_details():
    net = AlexNetV1()
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert (convs[0].kernel_size, convs[0].stride) == ((11, 11), (4, 4))
    lrns = [i for i, m in enumerate(net.features) if isinstance(m, nn.LocalResponseNorm)]
    assert lrns == [2, 6]  # after conv1's and conv2's ReLU, before their pools
    assert (net.features[2].size, net.features[2].alpha, net.features[2].beta, net.features[2].k) == (5, 1e-4, 0.75, 2)
    pools = [m for m in net.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3 and all((p.kernel_size, p.stride) == (3, 2) for p in pools)
    assert sum(isinstance(m, nn.Dropout) for m in net.classifier) == 2


def test_224_input_is_refused_with_the_size_that_works():
    with torch.device("meta"):
        net = AlexNetV1()
    with pytest.raises(ValueError, match="227"):
        net(torch.zeros(1, 3, 224, 224, device="meta"))


def test_backbone_follows_the_contract():
    torch.manual_seed(0)
    backbone = build_backbone(BackboneConfig(name="alexnet_v1", width=0.25, freeze_at=2, norm="frozen_bn"))
    out = backbone(torch.rand(1, 3, 227, 227))
    spec = backbone.output_spec()
    assert {k: (v.channels, v.stride) for k, v in spec.items()} == {"s16": (64, 16), "s32": (64, 32)}
    assert {k: tuple(v.shape) for k, v in out.items()} == {"s16": (1, 64, 13, 13), "s32": (1, 64, 6, 6)}
    convs = [m for m in backbone.features if isinstance(m, nn.Conv2d)]
    assert [c.weight.requires_grad for c in convs] == [False, False, True, True, True]
    assert not any(isinstance(m, nn.Linear) for m in backbone.modules())  # no fc classifier in a backbone
    with pytest.raises(ValueError, match="model.backbone.norm"):
        build_backbone(BackboneConfig(name="alexnet_v1", norm="batchnorm"))
    with pytest.raises(ValueError, match="no published weights"):
        build_backbone(BackboneConfig(name="alexnet_v1", weights="IMAGENET1K_V1"))


def test_backbone_loads_a_local_classifier_state_dict(tmp_path):
    torch.manual_seed(1)
    net = AlexNetV1(width=0.25)
    torch.save(net.state_dict(), tmp_path / "alexnet_v1.pt")
    backbone = build_backbone(BackboneConfig(name="alexnet_v1", width=0.25, weights=str(tmp_path / "alexnet_v1.pt")))
    image = torch.rand(1, 3, 227, 227)
    with torch.no_grad():
        assert torch.equal(backbone(image)["s32"], net.features(image))


def test_a_detector_builds_on_it():
    cfg = load_config("configs/faster_rcnn/voc_vgg16.yaml", [
        "model.backbone.name=alexnet_v1", "model.backbone.weights=null", "model.backbone.width=0.25",
        "model.backbone.freeze_at=0", "model.roi.head_fc_dims=[64,64]", "model.num_classes=3"])
    torch.manual_seed(0)
    model = build_model(cfg.model)
    s = summarize(model, synthetic_batch(227, 227))
    assert [(f.name, f.shape, f.receptive_field, f.rf_stride) for f in s.features] == [
        ("s16", [1, 64, 13, 13], 163, 16), ("s32", [1, 64, 6, 6], 195, 32)]
    assert s.total_params == sum(p.numel() for p in model.parameters())

"""U-Net's decoder on a backbone: geometry, skips by concatenation at each stride, loss, label maps."""
from __future__ import annotations

import pytest
import torch

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.models.layers.features import FeatureSpec
from detseg.models.seg.unet import UNetHead
from detseg.structures import Batch

CONFIG = "configs/unet/shapes.yaml"
TINY = ["model.backbone.weights=null", "model.backbone.width=0.25", "model.unet.channels=[32,16,8]"]


def _batch(hw=(100, 132), padded=(128, 160), num_classes=3) -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, *padded), dtype=torch.uint8, generator=g)
    sem = torch.randint(0, num_classes + 1, (2, *padded), generator=g)
    sem[:, hw[0]:] = 255
    sem[:, :, hw[1]:] = 255
    return Batch(images=images, image_sizes=[hw, hw], orig_sizes=[(50, 66), (200, 264)], image_ids=[0, 1],
                 sem_seg=sem)


def test_the_decoder_concatenates_each_stride_and_reaches_the_input_size():
    spec = {"s4": FeatureSpec(16, 4), "s8": FeatureSpec(32, 8), "s16": FeatureSpec(64, 16), "s32": FeatureSpec(128, 32)}
    head = UNetHead(spec, ["s32", "s16", "s8", "s4"], [48, 24, 12], num_classes=3)
    assert [block[0].in_channels for block in head.blocks] == [48 + 64, 24 + 32, 12 + 16]  # up-conv + skip
    assert [(up.in_channels, up.out_channels, up.stride) for up in head.ups] == [(128, 48, (2, 2)), (48, 24, (2, 2)),
                                                                                 (24, 12, (2, 2))]
    features = {k: torch.randn(1, s.channels, 96 // s.stride, 64 // s.stride) for k, s in spec.items()}
    assert head(features, (96, 64)).shape == (1, 4, 96, 64)


def test_unet_trains_and_predicts_label_maps_at_the_original_size():
    cfg = load_config(CONFIG, TINY)
    torch.manual_seed(0)
    model = build_model(cfg.model, 3)
    losses = model(_batch(), mode="loss")
    assert set(losses) == {"loss_unet_ce"} and torch.isfinite(losses["loss_unet_ce"])
    losses["loss_unet_ce"].backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert model.backbone.layer1[0].conv1.weight.grad.abs().sum() > 0  # the s4 skip reaches layer1
    model.eval()
    with torch.no_grad():
        maps = model(_batch(), mode="predict")
    assert [tuple(m.shape) for m in maps] == [(50, 66), (200, 264)] and maps[0].dtype == torch.int64


def test_bad_decoder_settings_are_one_line():
    spec = {"s8": FeatureSpec(8, 8), "s16": FeatureSpec(8, 16)}
    with pytest.raises(ValueError, match="deepest map to the shallowest"):
        UNetHead(spec, ["s8", "s16"], [8], 3)
    with pytest.raises(ValueError, match="one width per decoder step: 1"):
        UNetHead(spec, ["s16", "s8"], [8, 4], 3)

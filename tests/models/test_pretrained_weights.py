"""The pre-trained start of configs/faster_rcnn/custom_pretrained.yaml, offline: torchvision's weight
enum resolved to a file in torch's cache (made here), and a failed download as one line."""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from detseg.config import load_config
from detseg.models.build import build_backbone
from detseg.models.backbones.base import WeightsDownloadError
from detseg.models.build import build_model

PRETRAINED = "configs/faster_rcnn/custom_pretrained.yaml"
DATA = ["data.train.root=data/bccd", "data.train.split=trainval", "data.val.root=data/bccd", "data.val.split=test"]


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # get_dir() follows TORCH_HOME again
    return tmp_path


def test_default_weights_load_from_torch_cache_without_network(torch_home, monkeypatch):
    enum = torchvision.models.MobileNet_V3_Large_Weights.DEFAULT
    torch.manual_seed(3)
    reference = torchvision.models.mobilenet_v3_large()
    cached = torch_home / "hub" / "checkpoints" / Path(enum.url).name
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)  # must not be needed
    cfg = load_config(PRETRAINED, DATA + ["model.rpn.anchor_sizes=[[16],[32],[64],[128]]"])
    backbone = build_backbone(cfg.model.backbone)
    assert torch.equal(backbone.features[5].block[0][0].weight, reference.features[5].block[0][0].weight)
    model = build_model(cfg.model, 3)  # the whole detector builds on it
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in reference.features.parameters())


def test_failed_download_is_one_line_naming_the_url_and_the_cache_file(torch_home, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    cfg = load_config(PRETRAINED, DATA)
    with pytest.raises(WeightsDownloadError) as info:
        build_backbone(cfg.model.backbone)
    message = str(info.value)
    url = torchvision.models.MobileNet_V3_Large_Weights.DEFAULT.url
    target = torch_home / "hub" / "checkpoints" / Path(url).name
    assert "\n" not in message and url in message and str(target) in message and "TORCH_HOME" in message
    assert isinstance(info.value, ValueError)  # tools' run_main prints ValueErrors as one line, exit 2


def test_scaled_backbone_with_weights_points_at_the_pretrained_config():
    cfg = load_config("configs/faster_rcnn/custom.yaml", DATA + ["model.backbone.weights=DEFAULT"])
    with pytest.raises(ValueError, match="width 1.0, got 0.5.*custom_pretrained.yaml"):
        build_backbone(cfg.model.backbone)


def _no_network(url, dst, *args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("content", [b"", b"<html>404 Not Found</html>" * 20])
def test_a_weights_file_torch_cannot_read_is_named_as_such(tmp_path, content):
    from detseg.utils.checkpoint import CheckpointError

    junk = tmp_path / "backbone.pt"
    junk.write_bytes(content)
    cfg = load_config("configs/faster_rcnn/custom.yaml", DATA + [f"model.backbone.weights={junk}"])
    with pytest.raises(CheckpointError, match=rf"^model.backbone.weights {junk} is (empty|not a torch checkpoint)"):
        build_backbone(cfg.model.backbone)  # not "needs width 1.0": the file is the problem

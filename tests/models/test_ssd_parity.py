"""detseg's SSD300-VGG16 and SSDlite320-MobileNetV3 equal torchvision's: parameters, detections, losses."""
import pytest
import torch
import torchvision

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.interop.torchvision_import import CONFIGS, convert_state_dict, load_converted
from tests.models.test_torchvision_parity import _batch, _images

SIZES = {"ssd300_vgg16": 300, "ssdlite320_mobilenet_v3_large": 320}
PARAMS = {"ssd300_vgg16": 35_641_826, "ssdlite320_mobilenet_v3_large": 3_440_060}


def _torchvision(arch: str):
    torch.manual_seed(0)
    model = getattr(torchvision.models.detection, arch)(weights=None, weights_backbone=None, num_classes=91)
    _calibrate_batch_norm(model, SIZES[arch])
    return model.eval()


def _calibrate_batch_norm(model, size: int) -> None:
    """Running statistics from real activations: with the default ones SSDlite's random layers shrink
    every map to a constant and all scores tie, so the order of detections would be arbitrary."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms:
        return
    for norm in norms:
        norm.momentum = None  # a plain average over the calibration pass
        norm.reset_running_stats()
    model.train()
    with torch.no_grad():
        images, _ = model.transform([img.float() / 255 for img in _images(1, [(size, size)] * 2)])
        model.head(list(model.backbone(images.tensors).values()))


def _detseg(arch: str, tv_model=None):
    cfg = load_config(CONFIGS[arch], ["model.backbone.weights=null"])  # no downloads in tests
    model = build_model(cfg.model)
    if tv_model is not None:
        load_converted(model, convert_state_dict(arch, tv_model.state_dict()))
    return model.eval()


@pytest.mark.parametrize("arch", list(SIZES))
def test_param_count_matches_torchvision(arch):
    assert sum(p.numel() for p in _detseg(arch).parameters()) == PARAMS[arch]
    tv = getattr(torchvision.models.detection, arch)(weights=None, weights_backbone=None, num_classes=91)
    assert sum(p.numel() for p in tv.parameters()) == PARAMS[arch]


@pytest.fixture(scope="module")
def pairs():
    """(torchvision model, converted detseg model) per architecture, built once for the module."""
    cache = {}

    def get(arch):
        if arch not in cache:
            tv = _torchvision(arch)
            cache[arch] = tv, _detseg(arch, tv)
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", list(SIZES))
def test_detections_match_torchvision(arch, pairs):
    tv, model = pairs(arch)
    size = SIZES[arch]
    images = _images(0, [(size, size), (size, size)])  # torchvision's fixed-size resize is the identity
    with torch.no_grad():
        expected = tv([img.float() / 255 for img in images])
        got = model(_batch(images), mode="predict")
    for exp, out in zip(expected, got):
        assert len(out) == len(exp["boxes"]) == tv.detections_per_img
        assert len(set(exp["scores"].tolist())) == len(out)  # no ties: the order is meaningful
        torch.testing.assert_close(out.boxes, exp["boxes"], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(out.scores, exp["scores"], atol=1e-5, rtol=1e-4)
        assert torch.equal(out.labels + 1, exp["labels"])  # detseg label k is torchvision class k + 1


def test_ssd300_losses_match_torchvision(pairs):
    """Matching (IoU 0.5 plus each box's best default box), 3:1 hard negatives, normalisation by positives."""
    tv, model = pairs("ssd300_vgg16")
    tv.train(), model.train()  # VGG-16 SSD has no BatchNorm or dropout: the modes differ only in what they return
    images = _images(2, [(300, 300), (300, 300)])
    boxes = [torch.tensor([[20.0, 30.0, 120.0, 200.0], [150.0, 40.0, 290.0, 110.0], [5.0, 5.0, 30.0, 22.0]]),
             torch.tensor([[60.0, 60.0, 240.0, 250.0]])]
    labels = [torch.tensor([0, 16, 89]), torch.tensor([4])]
    expected = tv([img.float() / 255 for img in images], [{"boxes": b, "labels": k + 1} for b, k in zip(boxes, labels)])
    batch = _batch(images)
    batch.boxes, batch.labels = boxes, labels
    batch.iscrowd = [torch.zeros(len(b), dtype=torch.bool) for b in boxes]
    got = model(batch, mode="loss")
    tv.eval(), model.eval()
    assert set(got) == {"loss_ssd_cls", "loss_ssd_box"}
    torch.testing.assert_close(got["loss_ssd_cls"], expected["classification"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got["loss_ssd_box"], expected["bbox_regression"], rtol=1e-5, atol=1e-5)


def test_import_tool_writes_a_checkpoint_eval_can_load(tmp_path, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    from detseg.app.pipeline import load_trained_model

    root = Path(__file__).resolve().parents[2]
    tv = _torchvision("ssdlite320_mobilenet_v3_large")
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    argv = ["import_torchvision.py", "--arch", "ssdlite320_mobilenet_v3_large", "--weights", str(tmp_path / "tv.pth"),
            "--output", str(tmp_path / "detseg.pt")]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.syspath_prepend(str(root / "tools"))
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(root / "tools/import_torchvision.py"), run_name="__main__")
    assert exit_info.value.code == 0
    cfg = load_config(root / CONFIGS["ssdlite320_mobilenet_v3_large"], ["model.backbone.weights=null"])
    model, loaded = load_trained_model(cfg, tmp_path / "detseg.pt", "cpu")
    names = loaded.model.class_names  # torchvision's COCO names, stored with the import
    assert len(names) == loaded.model.num_classes == 90 and names[0] == "person" and names[46] == "cup"
    assert names[11] == "N/A"  # COCO id 12 is unused
    assert loaded.data.category_ids == list(range(1, 91))  # label 46 ("cup") is COCO's id 47
    ours = model.state_dict()
    for name, value in convert_state_dict("ssdlite320_mobilenet_v3_large", tv.state_dict()).items():
        assert torch.equal(ours[name], value), name

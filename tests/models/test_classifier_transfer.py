"""model.backbone.weights naming a detseg checkpoint: exactly the backbone tensors, or a clear error."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detseg.config import config_to_dict, load_config
from detseg.utils.checkpoint import CheckpointError, save_checkpoint
from detseg.models.build import build_model
from detseg.app.pipeline import load_trained_model

REPO = Path(__file__).resolve().parents[2]
CLASSIFIER = REPO / "configs/classification/shape_crops_resnet18.yaml"
DETECTOR = REPO / "configs/faster_rcnn/shapes_pretrained.yaml"
TINY = ["model.backbone.width=0.25"]


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every float tensor, buffers (BatchNorm statistics) included, set to seeded noise."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return model


def _classifier_checkpoint(path: Path, overrides: list[str], seed: int = 0) -> dict[str, torch.Tensor]:
    cfg = load_config(CLASSIFIER, overrides)
    model = _randomised(build_model(cfg.model, 6), seed)
    save_checkpoint(path, {"model": model.state_dict(), "iteration": 10, "config": config_to_dict(cfg)})
    return model.state_dict()


def _detector(weights: Path, overrides: list[str]):
    return build_model(load_config(DETECTOR, [f"model.backbone.weights={weights}", *overrides]).model, 6)


def test_detector_backbone_equals_the_classifier_backbone(tmp_path):
    source = _classifier_checkpoint(tmp_path / "cls.pt", TINY)
    detector = _detector(tmp_path / "cls.pt", TINY)
    backbone = detector.backbone.state_dict()
    assert backbone.keys() == {k.removeprefix("backbone.") for k in source if k.startswith("backbone.")}
    for key, value in backbone.items():
        assert torch.equal(value, source[f"backbone.{key}"]), key
    # the rest of the detector is freshly initialised, not the checkpoint's noise in [0.5, 1.5)
    for part in (detector.neck, detector.proposal_generator, detector.roi_heads):
        assert all(p.min() < 0.5 for p in part.parameters())


def test_frozen_bn_detector_takes_the_statistics_of_a_bn_classifier(tmp_path):
    source = _classifier_checkpoint(tmp_path / "cls.pt", TINY)
    detector = _detector(tmp_path / "cls.pt", [*TINY, "model.backbone.norm=frozen_bn", "model.backbone.freeze_at=2"])
    torch.testing.assert_close(detector.backbone.bn1.running_var, source["backbone.bn1.running_var"], rtol=0, atol=0)
    assert not detector.backbone.layer1[0].conv1.weight.requires_grad  # freeze_at still applies


def test_shape_mismatch_names_the_key_and_the_trained_backbone(tmp_path):
    _classifier_checkpoint(tmp_path / "wide.pt", ["model.backbone.width=0.5"])
    with pytest.raises(CheckpointError) as info:
        _detector(tmp_path / "wide.pt", TINY)
    message = str(info.value)
    assert "'backbone.conv1.weight': checkpoint (32, 3, 7, 7), this model (16, 3, 7, 7)" in message
    assert "model.backbone.name=resnet18, model.backbone.width=0.5" in message


def test_deeper_backbone_is_refused_naming_an_extra_key(tmp_path):
    _classifier_checkpoint(tmp_path / "r34.pt", [*TINY, "model.backbone.name=resnet34"])
    with pytest.raises(CheckpointError, match=r"this backbone does not have, e\.g\. 'backbone\.layer1\.2\."):
        _detector(tmp_path / "r34.pt", TINY)


def test_checkpoint_without_backbone_weights_is_refused(tmp_path):
    save_checkpoint(tmp_path / "head.pt", {"model": {"fc.weight": torch.zeros(6, 4)}, "iteration": 1})
    with pytest.raises(CheckpointError, match=r"holds no 'backbone\.\*' weights .*fc\.weight"):
        _detector(tmp_path / "head.pt", TINY)


def test_missing_checkpoint_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.backbone.weights: no file .*nothing.pt"):
        _detector(tmp_path / "nothing.pt", TINY)


def test_trained_detector_loads_after_its_pretraining_file_is_gone(tmp_path):
    _classifier_checkpoint(tmp_path / "cls.pt", TINY)
    cfg = load_config(DETECTOR, [f"model.backbone.weights={tmp_path / 'cls.pt'}", *TINY, "model.num_classes=6"])
    detector = _randomised(build_model(cfg.model), 1)
    save_checkpoint(tmp_path / "det.pt", {"model": detector.state_dict(), "iteration": 5, "config": config_to_dict(cfg)})
    (tmp_path / "cls.pt").unlink()
    loaded, _ = load_trained_model(cfg, tmp_path / "det.pt", torch.device("cpu"))
    assert torch.equal(loaded.backbone.conv1.weight, detector.backbone.conv1.weight)

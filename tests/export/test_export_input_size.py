"""The default export fits the config's test resize: dynamic under the shortest-edge resize (so every
image's aspect ratio runs), fixed under data.fixed_size or when asked."""
import numpy as np
import pytest
from export_helpers import ROOT, TWO_STAGE_TINY, save_tiny_checkpoint, tiny_model

from detseg.app.predictor import Predictor
from detseg.cli.export import main as export_main
from detseg.config import load_config
from detseg.data.datasets.base import read_rgb
from detseg.export.input_size import export_input
from detseg.export.onnx_export import TOLERANCES, _compare_detections
from detseg.export.onnx_runtime import OnnxPredictor


def _cfg(config: str, *overrides: str):
    return load_config(ROOT / config, list(overrides))


def test_shortest_edge_resize_exports_dynamic_and_fixed_size_fixed():
    assert export_input(_cfg("configs/faster_rcnn/shapes.yaml")).dynamic
    fixed = export_input(_cfg("configs/faster_rcnn/shapes.yaml", "data.fixed_size=[160,224]"))
    assert (fixed.dynamic, fixed.hw, fixed.note) == (False, (160, 224), "")
    ssd = export_input(_cfg("configs/ssd/shapes.yaml"))
    assert (ssd.dynamic, ssd.hw, ssd.note) == (False, (256, 256), "")


def test_fixed_is_asked_for_and_said_to_refuse_other_sizes():
    cfg = _cfg("configs/faster_rcnn/shapes.yaml")
    asked = export_input(cfg, want_fixed=True)
    assert (asked.dynamic, asked.hw) == (False, (192, 192)) and "will refuse" in asked.note
    sized = export_input(cfg, input_size=(128, 160))
    assert (sized.dynamic, sized.hw) == (False, (128, 160))
    example = export_input(cfg, want_dynamic=True, input_size=(128, 160))
    assert (example.dynamic, example.hw) == (True, (128, 160))
    with pytest.raises(ValueError, match="--dynamic and --fixed"):
        export_input(cfg, want_dynamic=True, want_fixed=True)


def test_fixed_size_only_arch_without_fixed_size_says_so():
    shape = export_input(_cfg("configs/ssd/shapes.yaml", "data.fixed_size=null"))
    assert not shape.dynamic and "set data.fixed_size" in shape.note


def test_default_export_runs_images_of_two_aspect_ratios_as_pytorch(tmp_path, shapes_paths, capsys):
    config = "configs/faster_rcnn/shapes.yaml"
    cfg, model = tiny_model(config, TWO_STAGE_TINY)
    ckpt = save_tiny_checkpoint(tmp_path / "model.pt", cfg, model)
    onnx_path = tmp_path / "model.onnx"
    assert export_main([config, "--checkpoint", str(ckpt), "--output", str(onnx_path), *TWO_STAGE_TINY]) == 0
    assert "dynamic input" in capsys.readouterr().out
    torch_predictor, onnx_predictor = Predictor(cfg, ckpt), OnnxPredictor(cfg, onnx_path)
    rgb = read_rgb(str(sorted(shapes_paths["val_dir"].glob("*.jpg"))[0]))
    for image in (rgb[:, : rgb.shape[0] * 2 // 3], np.ascontiguousarray(rgb.transpose(1, 0, 2))):
        expected, got = torch_predictor(image), onnx_predictor(image)
        diff = _compare_detections(expected, got)  # raises on another count of detections
        assert diff["detections"] > 0, diff
        assert diff["boxes"] <= TOLERANCES["boxes"] and diff["scores"] <= TOLERANCES["scores"], diff
        assert diff["labels"] == 0, diff

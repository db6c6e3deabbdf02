"""tools/export.py then tools/infer.py --backend onnxruntime: the same predictions.json as PyTorch's."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from export_helpers import CLASSES, ROOT, TWO_STAGE_TINY, save_tiny_checkpoint, tiny_model
from pycocotools import mask as mask_utils

from detseg.export.onnx_export import export_onnx
from detseg.data.datasets.base import read_rgb
from detseg.export.onnx_runtime import OnnxPredictor
from detseg.app.predictor import Predictor

MASK_TINY = [*TWO_STAGE_TINY, "model.mask.conv_dims=[32]", "model.roi.detections_per_image=10"]


def run_tool(*args):
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args[0]}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def infer_both(tmp_path, config, overrides, images, export_args=()):
    cfg, model = tiny_model(config, overrides)
    ckpt = save_tiny_checkpoint(tmp_path / "model.pt", cfg, model)
    onnx_path = tmp_path / "model.onnx"
    printed = run_tool("tools/export.py", config, "--checkpoint", ckpt, "--format", "onnx", "--output", onnx_path,
                       *export_args, *overrides)
    assert "within tolerance" in printed and onnx_path.is_file(), printed
    outputs = {}
    for backend, weights in (("pytorch", ckpt), ("onnxruntime", onnx_path)):
        out = tmp_path / backend
        # PyTorch in float32 like the graph (the subprocess's "auto" would pick bf16 on a CPU with bf16)
        run_tool("tools/infer.py", config, "--checkpoint", weights, "--backend", backend, "--input", *images,
                 "--output-dir", out, "--score-threshold", "0", *overrides, "train.amp=false")
        outputs[backend] = out
    return printed, outputs


def test_mask_rcnn_onnx_predictions_match_pytorch(tmp_path, shapes_paths):
    images = sorted(shapes_paths["val_dir"].glob("*.jpg"))[:2]  # different sizes: a dynamic export
    printed, outputs = infer_both(tmp_path, "configs/mask_rcnn/shapes.yaml", MASK_TINY, images, ["--dynamic"])
    assert "masks" in printed and "boxes" in printed  # the per-output differences are reported
    torch_records, onnx_records = (json.loads((outputs[b] / "predictions.json").read_text()) for b in outputs)
    assert len(torch_records) == len(onnx_records) == 2
    for ref, got in zip(torch_records, onnx_records):
        assert ref["file_name"] == got["file_name"] and ref["labels"] == got["labels"] and len(ref["labels"]) == 10
        assert np.allclose(ref["boxes"], got["boxes"], atol=0.011)  # written rounded to 0.01 px
        assert np.allclose(ref["scores"], got["scores"], atol=1.1e-4)  # rounded to 1e-4
        ious = mask_utils.iou(got["masks"], ref["masks"], [0] * len(ref["masks"])).diagonal()
        assert ious.min() > 0.99, ious
        drawn = [cv2.imread(str(outputs[b] / f"{images[0].stem}.jpg")) for b in outputs]
        assert drawn[0].shape == drawn[1].shape


def test_fcn_onnx_predictor_gives_pytorch_label_maps(tmp_path, shapes_paths):
    # infer.py's two predictors, called directly (no subprocess): label maps at each original size
    overrides = ["model.backbone.width=0.25", "data.min_size_test=128", "data.max_size_test=192"]
    cfg, model = tiny_model("configs/fcn/shapes_8s.yaml", overrides)
    ckpt = save_tiny_checkpoint(tmp_path / "model.pt", cfg, model)
    path = export_onnx(model, "fcn", tmp_path / "fcn.onnx", (128, 128), True, {"class_names": CLASSES})
    torch_predictor, onnx_predictor = Predictor(cfg, ckpt), OnnxPredictor(cfg, path)
    assert onnx_predictor.task == torch_predictor.task == "semantic"
    for image in sorted(shapes_paths["val_dir"].glob("*.jpg"))[:2]:
        rgb = read_rgb(str(image))
        expected, got = torch_predictor(rgb), onnx_predictor(rgb)
        assert got.shape == rgb.shape[:2] and got.dtype == expected.dtype
        assert torch.equal(got, expected)


def test_fixed_size_model_refuses_another_input_size(tmp_path, shapes_paths):
    cfg, model = tiny_model("configs/faster_rcnn/shapes.yaml", TWO_STAGE_TINY)
    path = export_onnx(model, "faster_rcnn", tmp_path / "fixed.onnx", (128, 128), False, {"class_names": CLASSES})
    predictor = OnnxPredictor(cfg, path)
    assert predictor.class_names == CLASSES and predictor.task == "detection"
    square = np.full((200, 200, 3), 127, np.uint8)  # resized to 128 x 128: the export size
    assert len(predictor(square).boxes) > 0
    with pytest.raises(ValueError, match="--dynamic"):
        predictor(np.full((200, 300, 3), 127, np.uint8))  # resized to 128 x 192

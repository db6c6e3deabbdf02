"""Tiny random-weight models saved as detseg checkpoints, and shapes pictures, for the ONNX export tests."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import torch
from torch import nn

from detseg.config import config_to_dict, load_config
from detseg.data.datasets.base import read_rgb
from detseg.utils.checkpoint import FORMAT, VERSION, save_checkpoint
from detseg.export.onnx_export import TOLERANCES, compare, export_onnx
from detseg.models.build import build_model
from detseg.structures import Batch

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["circle", "square", "triangle", "star", "hexagon", "ellipse"]
TWO_STAGE_TINY = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64,64]",
                  "data.min_size_test=128", "data.max_size_test=192"]
# the tolerances of tools/export.py (measured maxima per family: docs in the README section on ONNX export)
BOX_ATOL, SCORE_ATOL, LOGIT_ATOL = TOLERANCES["boxes"], TOLERANCES["scores"], TOLERANCES["logits"]


def tiny_model(config: str, overrides: list[str], seed: int = 0):
    """(cfg, eval model) with random weights (no pre-trained backbone), 6 shapes classes."""
    cfg = load_config(ROOT / config, ["model.backbone.weights=null", *overrides])
    cfg.model.num_classes, cfg.model.class_names = len(CLASSES), list(CLASSES)
    torch.manual_seed(seed)
    return cfg, build_model(cfg.model).eval()


def calibrate_batchnorm(model, images: list) -> None:
    """BatchNorm statistics from the images (one train-mode pass): a randomly initialised MobileNetV3
    shrinks its activations to ~1e-16, where every score ties and any order of the detections is right."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the pass
    chw = torch.from_numpy(np.stack([image.transpose(2, 0, 1) for image in images]))
    hw = [tuple(image.shape[:2]) for image in images]
    model.train()
    with torch.no_grad():
        model.raw_outputs(Batch(images=chw, image_sizes=hw, orig_sizes=hw, image_ids=list(range(len(images)))))
    model.eval()


def save_tiny_checkpoint(path: Path, cfg, model) -> Path:
    save_checkpoint(path, {"format": FORMAT, "version": VERSION, "model": model.state_dict(), "iteration": 0,
                           "config": config_to_dict(cfg)})
    return path


def shapes_pictures(shapes_paths, sizes: list[tuple[int, int]]) -> list:
    """Validation pictures of the shapes fixture, one per size, resized to it (RGB uint8 HWC)."""
    files = sorted(Path(shapes_paths["val_dir"]).glob("*.jpg"))
    return [cv2.resize(read_rgb(str(f)), (w, h), interpolation=cv2.INTER_AREA) for f, (h, w) in zip(files, sizes)]


def export_and_compare(tmp_path: Path, arch: str, model, input_hw, dynamic: bool, images) -> tuple[Path, list]:
    path = export_onnx(model, arch, tmp_path / f"{arch}.onnx", input_hw, dynamic, {"class_names": CLASSES})
    return path, compare(model, arch, path, images)


def input_dims(path: Path) -> list:
    """The "image" input's dims: ints where fixed, names where dynamic."""
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def assert_detections_match(results: list[dict], masks: bool = False) -> None:
    """Every image: detections present, the same count (compare raises otherwise), within the atols."""
    for result in results:
        assert result["detections"] > 0, result
        assert result["boxes"] <= BOX_ATOL and result["scores"] <= SCORE_ATOL, result
        assert result["labels"] == 0, result
        if masks:
            assert result["masks"] <= 1e-3, result  # 1 - IoU of the pasted masks

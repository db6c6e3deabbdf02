"""``OnnxPredictor``: an exported model (tools/export.py) run by onnxruntime, with Predictor's interface.

Resizing happens here, as in detseg.app.predictor.Predictor (same transform); the graph sees the resized
uint8 image and answers in its pixels; boxes and masks are mapped back to the original image here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from detseg.config import Config, load_config
from detseg.models.layers.postprocess import instances_to_original, label_map_to_original
from detseg.app.predictor import check_rgb, eval_transform, image_sample
from detseg.structures import Instances
from detseg.export.graphs import graph_task

META_PREFIX = "detseg."


def open_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session, with a clear error for a missing or unreadable file."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("the onnxruntime backend needs onnxruntime: pip install -e '.[export]'") from exc
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ValueError(f"{path} is not a readable ONNX model: {exc}") from exc


def read_metadata(session) -> dict:
    """What tools/export.py stored beside the graph (arch, class names, input size, mask threshold)."""
    meta = session.get_modelmeta().custom_metadata_map
    if META_PREFIX + "arch" not in meta:
        raise ValueError("the ONNX model has no detseg metadata: export it with tools/export.py")
    return {key[len(META_PREFIX):]: json.loads(value) for key, value in meta.items() if key.startswith(META_PREFIX)}


def run_graph(session, image_chw: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 [3, H, W] -> the graph's outputs by name."""
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": image_chw[None]})))


def to_instances(outputs: dict[str, np.ndarray], input_hw, orig_hw, mask_threshold: float = 0.5) -> Instances:
    """Graph outputs (input pixels) -> Instances in the original image, masks pasted as Predictor's."""
    mask_probs = torch.from_numpy(outputs["mask_probs"]) if "mask_probs" in outputs else None
    instances = Instances(torch.from_numpy(outputs["boxes"]).reshape(-1, 4), torch.from_numpy(outputs["scores"]),
                          torch.from_numpy(outputs["labels"]).to(torch.int64), mask_probs)
    return instances_to_original(instances, input_hw, orig_hw, mask_threshold)


def to_label_map(logits: np.ndarray, input_hw, orig_hw) -> torch.Tensor:
    """[1, C, h, w] logits -> int64 [H, W] label map of the original image (the Segmentor's rule)."""
    return label_map_to_original(torch.from_numpy(logits)[0], tuple(input_hw), tuple(orig_hw))


class OnnxPredictor:
    """``OnnxPredictor(config, model.onnx)(rgb_uint8_hwc)`` -> Instances (or an int64 label map for FCN),
    as detseg.app.predictor.Predictor. The config gives the resize (data.*); the classes come from the file."""

    def __init__(self, config: str | Path | Config, model_path: str | Path, threads: int | None = None):
        self.cfg = config if isinstance(config, Config) else load_config(config)
        self.session = open_session(model_path, threads)
        self.meta = read_metadata(self.session)
        self.task = graph_task(self.meta["arch"])
        self.class_names = self.meta["class_names"]
        self.cfg.model.class_names = self.cfg.model.class_names or self.class_names
        self.cfg.model.num_classes = self.cfg.model.num_classes or len(self.class_names)
        self.transform = eval_transform(self.cfg)
        self.path = Path(model_path)

    def __call__(self, image: np.ndarray):
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list:
        return [self._predict(image, i) for i, image in enumerate(images)]

    def _predict(self, image: np.ndarray, index: int):
        check_rgb(image)
        chw = image_sample(self.transform, image, index)["image"].numpy()
        input_hw, orig_hw = chw.shape[1:], image.shape[:2]
        require_input_size(self.meta, input_hw, self.path)
        outputs = run_graph(self.session, chw)
        if self.task == "semantic":
            return to_label_map(outputs["logits"], input_hw, orig_hw)
        return to_instances(outputs, input_hw, orig_hw, self.meta.get("mask_threshold", 0.5))


def require_input_size(meta: dict, input_hw, path: Path) -> None:
    """A fixed-size graph (metadata ``input_size``) takes only inputs of that size: one line otherwise."""
    fixed = meta.get("input_size")
    if fixed is not None and list(input_hw) != list(fixed):
        raise ValueError(f"{path} was exported for {fixed[0]}x{fixed[1]} inputs, but the config resizes "
                         f"this image to {input_hw[0]}x{input_hw[1]}: export with --dynamic, or set "
                         "data.fixed_size to the export size")

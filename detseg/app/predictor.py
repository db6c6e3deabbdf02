"""``Predictor``: a trained model as a function from an RGB image to detections."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detseg.config import Config, load_config
from detseg.data.collate import collate
from detseg.data.dense_transforms import build_dense_transforms, uses_dense_transforms
from detseg.data.transforms import build_transforms
from detseg.engine import precision
from detseg.engine.compile import compile_for_inference
from detseg.app.model_loading import device_for, load_trained_model
from detseg.app.task import model_task
from detseg.structures import Instances


class Predictor:
    """``Predictor(config, checkpoint)(rgb_uint8_hwc) -> Instances`` in that image's pixel coordinates;
    for semantic models (``task == "semantic"``) an int64 [H, W] label map of that image instead."""

    def __init__(self, config: str | Path | Config, checkpoint: str | Path, device: str | None = None):
        cfg = config if isinstance(config, Config) else load_config(config)
        if device is not None:
            cfg.train.device = device
        self.device = device_for(cfg)
        self.model, self.cfg = load_trained_model(cfg, checkpoint, self.device)
        if self.cfg.test.compile:
            compile_for_inference(self.model)
        self.task = model_task(self.model)
        if self.task == "classification":
            raise ValueError(f"{checkpoint} is an image classifier (arch classifier): the Predictor and "
                             "tools/infer.py draw detections or label maps; score it with tools/eval.py")
        self.class_names = self.cfg.model.class_names or [str(i) for i in range(self.cfg.model.num_classes)]
        self.transform = eval_transform(cfg)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> Instances:
        return self.predict_batch([image])[0]

    @torch.no_grad()
    def predict_batch(self, images: list[np.ndarray]) -> list[Instances]:
        samples = [self._sample(image, i) for i, image in enumerate(images)]
        with precision.autocast(self.cfg.train, self.device):
            predictions = self.model(collate(samples).to(self.device), mode="predict")
        return [p.to("cpu") for p in predictions]

    def _sample(self, image: np.ndarray, index: int) -> dict:
        check_rgb(image)
        return image_sample(self.transform, image, index, self._proposals(image))

    def _proposals(self, image: np.ndarray) -> np.ndarray | None:
        """Selective search on the fly for models that read precomputed proposals; None for the RPN."""
        prop = self.cfg.model.proposals
        if prop.source == "rpn":
            return None
        if prop.source != "selective_search":
            raise ValueError(f"model.proposals.source '{prop.source}' has no proposals for new images; "
                             "set model.proposals.source=selective_search to compute them on the fly")
        from detseg.data.selective_search import selective_search

        return selective_search(image, prop.mode, prop.max_test or prop.max_proposals, prop.min_size, prop.max_side)


def eval_transform(cfg: Config):
    """The evaluation resize of ``cfg.data``: data.fixed_size (SSD, YOLO) or the shortest-edge resize."""
    if uses_dense_transforms(cfg.data):
        return build_dense_transforms(cfg.data, train=False)
    return build_transforms(False, cfg.data.min_size_test, cfg.data.max_size_test, 0.0, 0.0)


def check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"Predictor expects an RGB uint8 array [H, W, 3], got {image.dtype} {image.shape}")


def image_sample(transform, image: np.ndarray, index: int, proposals: np.ndarray | None = None) -> dict:
    """One image as a dataset sample (no targets), resized by ``transform``; for collate."""
    boxes = proposals if proposals is not None else np.zeros((0, 4), np.float32)
    # proposals ride through the transform as boxes, so they are resized exactly like the image
    out, boxes, *_ = transform(image, boxes, np.zeros(len(boxes), np.int64), np.zeros(len(boxes), bool), None)
    sample = {
        "image": torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))),
        "image_id": index,
        "orig_size": image.shape[:2],
        "boxes": torch.zeros((0, 4)),
        "labels": torch.zeros(0, dtype=torch.int64),
        "iscrowd": torch.zeros(0, dtype=torch.bool),
    }
    if proposals is not None:
        sample["proposals"] = torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4))
    return sample

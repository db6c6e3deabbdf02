"""The app layer's entry points in one import, for tools and scripts: models (model_loading), loaders,
inference and evaluation. Each lives in its own module; this one only gathers them."""
from __future__ import annotations

from detseg.app.evaluate import build_evaluators, evaluate
from detseg.app.inference import run_inference
from detseg.app.loaders import eval_loader, train_loader_factory
from detseg.app.model_loading import (
    apply_test_overrides,
    build_model_for,
    device_for,
    load_trained_model,
    num_classes_for,
    settle_model_labels,
)

__all__ = [
    "apply_test_overrides",
    "build_evaluators",
    "build_model_for",
    "device_for",
    "eval_loader",
    "evaluate",
    "load_trained_model",
    "num_classes_for",
    "run_inference",
    "settle_model_labels",
    "train_loader_factory",
]

"""COCO, VOC and the synthetic shapes dataset (imported on first use, see detseg.data)."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "CocoDetection": "detseg.data.datasets.coco",
    "VOCDetection": "detseg.data.datasets.voc",
    "DetectionDataset": "detseg.data.datasets.base",
    "generate_shapes_dataset": "detseg.data.datasets.shapes",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # also replaces the submodule binding when names clash (collate.collate)
    return value

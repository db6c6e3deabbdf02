"""Datasets, transforms and collation.

Names are imported on first use (PEP 562) so that light users such as the dataset
generator do not pay for importing torch and albumentations.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "DatasetError": "detseg.data.errors",
    "collate": "detseg.data.collate",
    "build_transforms": "detseg.data.transforms",
    "CocoDetection": "detseg.data.datasets.coco",
    "VOCDetection": "detseg.data.datasets.voc",
    "generate_shapes_dataset": "detseg.data.datasets.shapes",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # also replaces the submodule binding when names clash (collate.collate)
    return value

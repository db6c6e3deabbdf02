"""What flows between backbone, neck and heads: feature maps keyed by stride, described by their shapes.

Heads and necks read these specs and never the backbone package, so any backbone fits any head."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSpec:
    channels: int
    stride: int


def stride_key(stride: int) -> str:
    """The key of a stride's map in every feature dict (``"s8"``, ``"s16"``, ...)."""
    return f"s{stride}"

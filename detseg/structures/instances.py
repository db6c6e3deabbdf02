"""Per-image predictions: the one output type every detection head returns."""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class Instances:
    """Detections of one image, boxes as float32 [N, 4] xyxy in absolute pixels.

    ``labels`` are the framework's contiguous ids ``0..K-1``; datasets map them
    back to their own category ids when predictions are written out.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    masks: Tensor | None = None

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def to(self, device: torch.device | str) -> "Instances":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return Instances(**{k: (v.to(device) if v is not None else None) for k, v in moved.items()})

    def __getitem__(self, index) -> "Instances":
        masks = self.masks[index] if self.masks is not None else None
        return Instances(self.boxes[index], self.scores[index], self.labels[index], masks)

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> "Instances":
        return Instances(
            torch.zeros((0, 4), device=device),
            torch.zeros((0,), device=device),
            torch.zeros((0,), dtype=torch.int64, device=device),
        )

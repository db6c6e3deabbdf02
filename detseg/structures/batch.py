"""A collated mini-batch: the single input type of every detector."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import Tensor


@dataclass
class Batch:
    """Padded images plus per-image targets.

    images:      uint8 [B, 3, H, W], zero-padded at the bottom/right to the largest image.
    image_sizes: (h, w) of each image after transforms, before padding.
    orig_sizes:  (h, w) of each image as stored on disk; predictions are mapped back to it.
    boxes:       float32 [N_i, 4] xyxy in the transformed image's pixels.
    labels:      int64 [N_i], contiguous 0..K-1.
    iscrowd:     bool [N_i]; crowd boxes are never positives.
    masks:       uint8 [N_i, h, w] instance masks, when the task has them.
    sem_seg:     int64 [B, H, W] semantic map (255 = ignore), when the task has it.
    proposals:   float32 [M_i, 4] precomputed proposals, when the model uses them.
    class_labels: int64 [B] one class per image, for classification (data.task classification).
    skipped_images: what the loader skipped to make this batch (undecodable files, "kind: message").
    """

    images: Tensor
    image_sizes: list[tuple[int, int]]
    orig_sizes: list[tuple[int, int]]
    image_ids: list[int]
    boxes: list[Tensor] = field(default_factory=list)
    labels: list[Tensor] = field(default_factory=list)
    iscrowd: list[Tensor] = field(default_factory=list)
    masks: list[Tensor] | None = None
    sem_seg: Tensor | None = None
    proposals: list[Tensor] | None = None
    class_labels: Tensor | None = None
    skipped_images: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        def move(value):
            if isinstance(value, Tensor):
                return value.to(device, non_blocking=non_blocking)
            if isinstance(value, list) and value and isinstance(value[0], Tensor):
                return [v.to(device, non_blocking=non_blocking) for v in value]
            return value

        return Batch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def pin_memory(self) -> "Batch":
        """Called by DataLoader(pin_memory=True) on custom batch types."""
        def pin(value):
            if isinstance(value, Tensor):
                return value.pin_memory()
            if isinstance(value, list) and value and isinstance(value[0], Tensor):
                return [v.pin_memory() for v in value]
            return value

        return Batch(**{f.name: pin(getattr(self, f.name)) for f in fields(self)})

    @property
    def has_targets(self) -> bool:
        return len(self.boxes) == len(self.image_ids)

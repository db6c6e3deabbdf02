"""Sample dicts -> Batch: images zero-padded at the bottom/right to the largest H and W."""
from __future__ import annotations

import torch
from torch import Tensor

from detseg.structures import Batch

SEM_SEG_IGNORE = 255


def _pad_stack(tensors: list[Tensor], size: tuple[int, int], fill: int = 0) -> Tensor:
    """Stack [..., h_i, w_i] tensors into one [B, ..., H, W] tensor, allocated once."""
    out = tensors[0].new_full((len(tensors), *tensors[0].shape[:-2], *size), fill)
    for dst, src in zip(out, tensors):
        dst[..., : src.shape[-2], : src.shape[-1]].copy_(src)
    return out


def _pad_each(tensors: list[Tensor], size: tuple[int, int]) -> list[Tensor]:
    """Zero-pad each [N_i, h, w] tensor to [N_i, H, W] (N_i differs, so no stacking)."""
    padded = []
    for src in tensors:
        dst = src.new_zeros((src.shape[0], *size))
        dst[:, : src.shape[-2], : src.shape[-1]].copy_(src)
        padded.append(dst)
    return padded


def _optional(samples: list[dict], key: str) -> list | None:
    """The values of ``key`` if every sample has it, None if none has; mixing is an error."""
    present = [key in s for s in samples]
    if not any(present):
        return None
    if not all(present):
        raise ValueError(f"collate: '{key}' is present in only {sum(present)} of {len(samples)} samples")
    return [s[key] for s in samples]


def collate(samples: list[dict]) -> Batch:
    """Collate sample dicts (see detseg.data.datasets.base) into a Batch; no size_divisibility here."""
    if not samples:
        raise ValueError("collate: empty list of samples")
    image_sizes = [(int(s["image"].shape[-2]), int(s["image"].shape[-1])) for s in samples]
    size = (max(h for h, _ in image_sizes), max(w for _, w in image_sizes))
    masks, sem_seg = _optional(samples, "masks"), _optional(samples, "sem_seg")
    return Batch(
        images=_pad_stack([s["image"] for s in samples], size),
        image_sizes=image_sizes,
        orig_sizes=[(int(s["orig_size"][0]), int(s["orig_size"][1])) for s in samples],
        image_ids=[int(s["image_id"]) for s in samples],
        boxes=_optional(samples, "boxes") or [],
        labels=_optional(samples, "labels") or [],
        iscrowd=_optional(samples, "iscrowd") or [],
        masks=_pad_each(masks, size) if masks is not None else None,
        sem_seg=_pad_stack(sem_seg, size, SEM_SEG_IGNORE) if sem_seg is not None else None,
        proposals=_optional(samples, "proposals"),
        class_labels=_stack_optional(samples, "class_label"),
        skipped_images=[m for s in samples for m in s.get("skipped_images", ())],
    )


def _stack_optional(samples: list[dict], key: str) -> Tensor | None:
    """Per-image scalars (a classification label) stacked into one [B] tensor, or None."""
    values = _optional(samples, key)
    return torch.stack([torch.as_tensor(v) for v in values]) if values is not None else None

"""The (dx, dy, dw, dh) box parameterisation of R-CNN, shared by RPN and RoI heads."""
from __future__ import annotations

import math

import torch
from torch import Tensor

_DEFAULT_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    """Encodes targets relative to reference boxes; weights scale each delta as in Fast R-CNN."""

    def __init__(self, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0), clip=_DEFAULT_CLIP):
        self.weights = tuple(float(w) for w in weights)
        self.clip = clip

    def encode(self, targets: Tensor, references: Tensor) -> Tensor:
        """Both [..., 4] xyxy -> deltas [..., 4]."""
        wx, wy, ww, wh = self.weights
        ref_w = references[..., 2] - references[..., 0]
        ref_h = references[..., 3] - references[..., 1]
        ref_x = references[..., 0] + 0.5 * ref_w
        ref_y = references[..., 1] + 0.5 * ref_h
        tgt_w = targets[..., 2] - targets[..., 0]
        tgt_h = targets[..., 3] - targets[..., 1]
        tgt_x = targets[..., 0] + 0.5 * tgt_w
        tgt_y = targets[..., 1] + 0.5 * tgt_h
        return torch.stack(
            (
                wx * (tgt_x - ref_x) / ref_w,
                wy * (tgt_y - ref_y) / ref_h,
                ww * torch.log(tgt_w / ref_w),
                wh * torch.log(tgt_h / ref_h),
            ),
            dim=-1,
        )

    def decode(self, deltas: Tensor, references: Tensor) -> Tensor:
        """deltas [..., K*4] against references [..., 4] -> boxes [..., K, 4] (K classes or 1)."""
        # the wider dtype: under autocast the deltas come out of a bf16/fp16 layer, and box coordinates
        # in bf16 would be rounded to whole pixels and worse
        dtype = torch.promote_types(deltas.dtype, references.dtype)
        deltas = deltas.reshape(*deltas.shape[:-1], -1, 4).to(dtype)
        references = references.to(dtype).unsqueeze(-2)
        wx, wy, ww, wh = self.weights
        ref_w = references[..., 2] - references[..., 0]
        ref_h = references[..., 3] - references[..., 1]
        ref_x = references[..., 0] + 0.5 * ref_w
        ref_y = references[..., 1] + 0.5 * ref_h
        dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
        dw = (deltas[..., 2] / ww).clamp(max=self.clip)
        dh = (deltas[..., 3] / wh).clamp(max=self.clip)
        ctr_x = dx * ref_w + ref_x
        ctr_y = dy * ref_h + ref_y
        half_w = 0.5 * torch.exp(dw) * ref_w
        half_h = 0.5 * torch.exp(dh) * ref_h
        return torch.stack((ctr_x - half_w, ctr_y - half_h, ctr_x + half_w, ctr_y + half_h), dim=-1)

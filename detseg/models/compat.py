"""Checkpoints written before a rename of the model's attributes: their weights under today's names."""
from __future__ import annotations

import torch

# old prefix -> new prefix: TwoStageDetector.rpn became proposal_generator (it holds any proposal source);
# R-CNN's backbone moved from inside its RoI pooler to the model itself
RENAMED_PREFIXES = {"rpn.": "proposal_generator.", "roi_heads.pooler.backbone.": "backbone."}


def upgrade_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors, keys under the names the models use now (a current state dict is unchanged)."""
    upgraded = {}
    for key, value in state.items():
        old = next((prefix for prefix in RENAMED_PREFIXES if key.startswith(prefix)), None)
        upgraded[RENAMED_PREFIXES[old] + key[len(old):] if old else key] = value
    return upgraded

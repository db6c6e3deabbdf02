"""Precomputed proposals (selective search or a user file) as a proposal source, RPN's interface."""
from __future__ import annotations

from torch import Tensor, nn

from detseg.structures import Batch


class PrecomputedProposals(nn.Module):
    """``forward(features, batch, with_loss) -> (batch.proposals, {})``: boxes come with the data.

    During training the RoI head adds the ground-truth boxes itself (``model.roi.add_gt_as_proposals``),
    so an image without proposals still trains.
    """

    def forward(self, features: dict[str, Tensor], batch: Batch, with_loss: bool):
        if batch.proposals is None:
            raise ValueError(
                "this model reads precomputed proposals (model.proposals.source 'selective_search' or 'file') but "
                "the batch has none: build the dataset through detseg.data.proposals.wrap_with_proposals "
                "(tools/train.py and tools/eval.py do)"
            )
        return list(batch.proposals), {}

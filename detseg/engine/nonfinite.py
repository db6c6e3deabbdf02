"""train.on_nonfinite: what a step with a non-finite loss or gradient norm does.

"error" raises FloatingPointError naming the iteration and every loss term (the last checkpoint is
from before that step); "skip" counts the step and returns False so the caller drops its update.
The checks run after backward but before the update, so the weights never take a non-finite step,
and every rank decides together: one rank raising alone would leave the others hanging.
"""
from __future__ import annotations

from typing import Callable

import torch

from detseg.utils import distributed as du

NONFINITE_POLICIES = ("error", "skip")


class NonFiniteGuard:
    def __init__(self, policy: str, say: Callable[[str], None]):
        if policy not in NONFINITE_POLICIES:
            raise ValueError(f"train.on_nonfinite must be one of {NONFINITE_POLICIES}, got {policy!r}")
        self.policy, self.say = policy, say
        self.skipped = 0  # updates dropped under "skip"
        self.device, self.rank = torch.device("cpu"), 0

    def place(self, device: torch.device, rank: int) -> None:
        """Where the agreement between ranks runs (known once the trainer is set up)."""
        self.device, self.rank = device, rank

    def loss_ok(self, total: torch.Tensor, losses: dict[str, torch.Tensor], iteration: int) -> bool:
        """False when the step at ``iteration`` (1-based) is to be skipped; raises under "error"."""
        finite = bool(torch.isfinite(total).item())
        if du.all_ranks_true(finite, self.device):
            return True
        where = f"rank {self.rank}" if not finite else f"another rank (this is rank {self.rank})"
        return self._nonfinite(f"non-finite loss at iteration {iteration} on {where}: "
                               f"total={total.item():.6g}, {_terms(losses)}")

    def grad_norm_ok(self, norm: torch.Tensor, total: torch.Tensor, losses: dict[str, torch.Tensor],
                     iteration: int) -> bool:
        finite = bool(torch.isfinite(norm).item())
        if du.all_ranks_true(finite, self.device):
            return True
        return self._nonfinite(f"non-finite gradient norm {norm.item()} at iteration {iteration} "
                               f"(loss {total.item():.6g}: {_terms(losses)})")

    def _nonfinite(self, message: str) -> bool:
        if self.policy == "error":
            raise FloatingPointError(message + "; the last checkpoint is from before this step "
                                     "(train.on_nonfinite=skip drops such steps instead)")
        self.skipped += 1
        self.say(f"{message}; step skipped ({self.skipped} so far)")
        return False


def _terms(losses: dict[str, torch.Tensor]) -> str:
    return ", ".join(f"{k}={v.item():.6g}" for k, v in losses.items())

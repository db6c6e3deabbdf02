"""NonFiniteGuard: train.on_nonfinite=error raises naming the step and its terms, skip counts and goes on."""
from __future__ import annotations

import pytest
import torch

from detseg.engine.nonfinite import NonFiniteGuard

LOSSES = {"loss_cls": torch.tensor(0.5), "loss_box": torch.tensor(float("nan"))}


def test_finite_values_pass():
    guard = NonFiniteGuard("error", say=print)
    assert guard.loss_ok(torch.tensor(1.5), {"loss_cls": torch.tensor(1.5)}, iteration=1)
    assert guard.grad_norm_ok(torch.tensor(3.0), torch.tensor(1.5), {}, iteration=1)


def test_error_names_the_iteration_rank_and_terms():
    guard = NonFiniteGuard("error", say=print)
    with pytest.raises(FloatingPointError) as info:
        guard.loss_ok(torch.tensor(float("nan")), LOSSES, iteration=7)
    assert str(info.value) == ("non-finite loss at iteration 7 on rank 0: total=nan, loss_cls=0.5, loss_box=nan; "
                               "the last checkpoint is from before this step (train.on_nonfinite=skip drops such "
                               "steps instead)")


def test_skip_counts_and_says_each_skipped_step():
    said = []
    guard = NonFiniteGuard("skip", say=said.append)
    assert not guard.loss_ok(torch.tensor(float("inf")), LOSSES, iteration=3)
    assert not guard.grad_norm_ok(torch.tensor(float("inf")), torch.tensor(2.0), LOSSES, iteration=4)
    assert guard.skipped == 2
    assert said == ["non-finite loss at iteration 3 on rank 0: total=inf, loss_cls=0.5, loss_box=nan; "
                    "step skipped (1 so far)",
                    "non-finite gradient norm inf at iteration 4 (loss 2: loss_cls=0.5, loss_box=nan); "
                    "step skipped (2 so far)"]


def test_unknown_policy_names_the_key():
    with pytest.raises(ValueError, match=r"train.on_nonfinite must be one of \('error', 'skip'\), got 'ignore'"):
        NonFiniteGuard("ignore", say=print)

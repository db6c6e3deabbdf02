"""Optimizer and learning-rate schedule, including re-fitting the schedule to a time budget."""
from __future__ import annotations

import bisect
import math

import torch
from torch import nn

from detseg.config.schema import SolverConfig

# Layers whose affine weight is a per-channel scale, not a feature detector.
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    _NORM_TYPES = _NORM_TYPES + (nn.RMSNorm,)

# A fitted schedule keeps its warm-up to at most this fraction of the run.
MAX_WARMUP_FRACTION = 0.1


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into decayed and non-decayed groups.

    Weight decay pulls parameters towards zero. For conv/linear weights that is the
    intended regularisation, but a norm layer's scale and any bias only shift or
    rescale activations: decaying them shrinks the normalised signal (or shifts its
    offset) without reducing model capacity, and is known to cost accuracy
    (detectron2 and timm exclude them too). Frozen parameters are left out entirely
    so the optimizer holds no state for them.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))  # a shared parameter must appear in one group only
            if isinstance(module, _NORM_TYPES) or name == "bias":
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, solver_cfg: SolverConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, solver_cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    name = solver_cfg.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(
            groups, lr=solver_cfg.lr, momentum=solver_cfg.momentum, nesterov=solver_cfg.nesterov
        )
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=solver_cfg.lr)
    raise ValueError(f"unknown solver.optimizer '{solver_cfg.optimizer}'; expected 'sgd' or 'adamw'")


class LrSchedule:
    """lr multiplier at an iteration: linear warm-up, then step decay or cosine.

    A plain object rather than a closure because LambdaLR saves a callable object's
    `__dict__` in its state_dict (and restores it on load): the fitted length, steps
    and warm-up travel with the scheduler into the checkpoint. All fields are plain
    ints/floats/lists so the checkpoint still loads with weights_only=True.
    """

    def __init__(self, kind: str, max_iters: int, warmup_iters: int, warmup_factor: float,
                 steps: list[int], gamma: float, min_lr_factor: float):
        if kind not in ("step", "cosine"):
            raise ValueError(f"unknown solver.schedule '{kind}'; expected 'step' or 'cosine'")
        self.kind, self.max_iters = kind, int(max_iters)
        self.warmup_iters, self.warmup_factor = int(warmup_iters), float(warmup_factor)
        self.steps, self.gamma = sorted(int(s) for s in steps), float(gamma)
        self.min_lr_factor = float(min_lr_factor)

    def __call__(self, it: int) -> float:
        return self._warmup(it) * self._main(it)

    def _warmup(self, it: int) -> float:
        if it >= self.warmup_iters:
            return 1.0
        alpha = it / self.warmup_iters
        return self.warmup_factor * (1.0 - alpha) + alpha

    def _main(self, it: int) -> float:
        if self.kind == "step":
            return self.gamma ** bisect.bisect_right(self.steps, it)
        # Cosine runs over the iterations after warm-up, so it starts exactly at lr.
        span = max(1, self.max_iters - self.warmup_iters)
        progress = min(1.0, max(0.0, (it - self.warmup_iters) / span))
        cos = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_factor + (1.0 - self.min_lr_factor) * cos


def build_lr_lambda(solver_cfg: SolverConfig, max_iters: int, base_max_iters: int | None = None) -> LrSchedule:
    """The schedule for a run of `max_iters`; when it was fitted down from `base_max_iters`
    (train.max_iters), step milestones keep their fraction of the run and warm-up is
    clamped to MAX_WARMUP_FRACTION of the fitted length."""
    steps, warmup = list(solver_cfg.steps), solver_cfg.warmup_iters
    if base_max_iters is not None and max_iters != base_max_iters:
        scale = max_iters / base_max_iters
        steps = [round(s * scale) for s in steps]
        warmup = min(warmup, int(MAX_WARMUP_FRACTION * max_iters))
    return LrSchedule(solver_cfg.schedule, max_iters, warmup, solver_cfg.warmup_factor,
                      steps, solver_cfg.gamma, solver_cfg.min_lr_factor)


def build_scheduler(optimizer: torch.optim.Optimizer, solver_cfg: SolverConfig,
                    max_iters: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, build_lr_lambda(solver_cfg, max_iters))


def refit_scheduler(scheduler: torch.optim.lr_scheduler.LambdaLR, solver_cfg: SolverConfig,
                    max_iters: int, base_max_iters: int) -> None:
    """Swap the schedule in place and re-apply it at the current iteration.

    LambdaLR already set the lr for the coming iteration from the old schedule; it
    is recomputed here (with LambdaLR's own expression) so the new one takes effect now.
    """
    fitted = build_lr_lambda(solver_cfg, max_iters, base_max_iters)
    for fn in scheduler.lr_lambdas:  # one shared LrSchedule per param group
        fn.__dict__.update(fitted.__dict__)
    groups = scheduler.optimizer.param_groups
    for group, base_lr, fn in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base_lr * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]


def iters_in_budget(sec_per_iter: float, elapsed_s: float, budget_s: float,
                    done_iters: int, max_iters: int) -> int:
    """Total run length that fits the wall-clock budget: never above max_iters, never
    below the iterations already done (a spent budget ends the run where it is)."""
    remaining = max(0.0, budget_s - elapsed_s)
    fit = done_iters + int(remaining // max(sec_per_iter, 1e-9))
    return min(max_iters, max(done_iters, fit))

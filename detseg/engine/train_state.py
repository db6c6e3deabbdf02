"""What a training checkpoint holds and how a resume takes it back.

A checkpoint is the state dicts of the four stateful parts (model, optimizer, lr scheduler, loss
scaler) plus a RunState: where the run is (iteration, max_iters and whether that was fitted to a
time budget, training seconds so far, best metric, skipped steps), the RNG state of every rank, the
world size and the config it was trained with.

A resume checks the config against the saved one first: a change that would silently alter what an
iteration means (batch size, architecture, label space, weights of another shape) is refused with a
one-line ResumeError; others are announced. A changed plan (PLAN_KEYS: run length, time budget, lr
schedule shape) is taken: the run goes on from the checkpoint's iteration under the schedule a run
planned with the new config has there (restore_schedule), said in one line.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from detseg.config import Config
from detseg.engine.optim import iters_in_budget, refit_scheduler
from detseg.utils import distributed as du
from detseg.utils.rng import set_rng_state

# (section, key, "refuse" | "warn"): config changes between a checkpoint and its resume.
# batch_size: the sampler position is iteration * batch_size, so samples would be skipped or
# repeated and lr no longer matches the batch; num_classes, arch: the heads' shapes change;
# class_names: the same outputs would mean other classes (a checkpoint without names is not checked).
RESUME_CHECKS = (("data", "batch_size", "refuse"), ("model", "num_classes", "refuse"),
                 ("model", "arch", "refuse"), ("model", "class_names", "refuse"), ("solver", "lr", "warn"),
                 ("solver", "class_weights", "warn"), ("solver", "class_weights_values", "warn"))
# The plan: how long the run is and the shape of its lr schedule. A change is how a run is extended
# (or shortened): the schedule is re-fitted from the current iteration (restore_schedule).
PLAN_KEYS = (("train", "max_iters"), ("train", "max_minutes"), ("solver", "schedule"), ("solver", "steps"),
             ("solver", "gamma"), ("solver", "warmup_iters"), ("solver", "warmup_factor"),
             ("solver", "min_lr_factor"))


class ResumeError(ValueError):
    """--resume with a config that is incompatible with the checkpoint's."""


class TrainingParts(NamedTuple):
    """The objects whose state dicts a checkpoint holds, under these names."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    def state_dicts(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self._asdict().items()}

    def load(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.scaler.is_enabled() and checkpoint.get("scaler"):  # a run without loss scaling saves a disabled one
            self.scaler.load_state_dict(checkpoint["scaler"])


@dataclass
class RunState:
    """A checkpoint's entries besides the parts' state dicts (the defaults read older checkpoints)."""
    iteration: int = 0
    max_iters: int = 0
    schedule_fitted: bool = False
    elapsed_s: float = 0.0
    best_metric: float | None = None
    skipped_steps: int = 0
    world_size: int = 1
    rng: list[dict] | None = None  # one entry per rank
    config: dict[str, Any] = field(default_factory=dict)

    def checkpoint(self, parts: TrainingParts) -> dict[str, Any]:
        return {**parts.state_dicts(), **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> RunState:
        get = checkpoint.get
        return cls(iteration=int(checkpoint["iteration"]), max_iters=int(get("max_iters", 0)),
                   schedule_fitted=bool(get("schedule_fitted", False)), elapsed_s=float(get("elapsed_s", 0.0)),
                   best_metric=get("best_metric"), skipped_steps=int(get("skipped_steps", 0)),
                   world_size=int(get("world_size", len(get("rng") or [None]))),  # older files: one RNG per rank
                   rng=get("rng"), config=get("config") or {})


def check_resume(path: Path, cfg: Config, saved: RunState, world_size: int) -> list[str]:
    """Refuse (ResumeError) what would silently change the run; return the deliberate changes to announce."""
    refused, warned = [], []
    for section, key, problem in RESUME_CHECKS:
        old, new = saved.config.get(section, {}).get(key), getattr(getattr(cfg, section), key)
        unrecorded = key == "class_names" and old is None
        if saved.config and old != new and not unrecorded:
            (refused if problem == "refuse" else warned).append(f"{section}.{key} {old} -> {new}")
    if saved.world_size != world_size:
        warned.append(f"world size {saved.world_size} -> {world_size} (same global batch, "
                      f"per-rank data order and RNG streams change)")
    if refused:
        raise ResumeError(f"cannot resume from {path}: {'; '.join(refused)}. These change what an "
                          f"iteration means; start a new run from its weights instead (--init-from {path}).")
    return warned


def plan_changes(cfg: Config, saved: RunState) -> list[str]:
    """The PLAN_KEYS whose value differs from the checkpoint's config, as "section.key old -> new"."""
    if not saved.config:
        return []
    changes = []
    for section, key in PLAN_KEYS:
        old, new = saved.config.get(section, {}).get(key), getattr(getattr(cfg, section), key)
        if old != new:
            changes.append(f"{section}.{key} {old} -> {new}")
    return changes


def check_model_fits(path: Path, model: nn.Module, saved_weights: dict[str, torch.Tensor]) -> None:
    """Refuse (one line) a checkpoint whose weights do not fit the model this config builds (another
    backbone, head sizes, input sizes that change a layer's shape) instead of torch's pages of keys."""
    own = model.state_dict()
    reshaped = [k for k in own if k in saved_weights and own[k].shape != saved_weights[k].shape]
    missing = [k for k in own if k not in saved_weights]
    unexpected = [k for k in saved_weights if k not in own]
    if not (reshaped or missing or unexpected):
        return
    example = (f", e.g. {reshaped[0]} {list(saved_weights[reshaped[0]].shape)} -> {list(own[reshaped[0]].shape)}"
               if reshaped else "")
    raise ResumeError(f"cannot resume from {path}: the model this config builds does not fit its weights "
                      f"({len(reshaped)} of another shape{example}; {len(missing)} missing, {len(unexpected)} "
                      f"unexpected); start a new run from its weights instead (--init-from {path}).")


def check_ranks_agree(iteration: int, checkpoint_path: Path) -> None:
    """Every rank must start where the others do (a collective: all ranks call it)."""
    iterations = du.all_gather_object(iteration)
    if len(set(iterations)) > 1:
        raise RuntimeError(f"ranks start at different iterations {iterations}: every node must "
                           f"read the same {checkpoint_path} (use a shared filesystem)")


def restore_schedule(saved: RunState, scheduler: torch.optim.lr_scheduler.LambdaLR, cfg: Config,
                     replan: bool = False) -> int:
    """The run length to go on with. A schedule fitted to a time budget is kept as saved unless the plan
    changed (``replan``); otherwise the config is the truth: from the current iteration on, the lr is the
    one a run planned with this config has there (so raising train.max_iters and resuming extends a run).
    A replanned run with a time budget starts from a length estimated at the saved average speed; the
    budget then re-times it (TimeBudget: not fitted)."""
    if saved.schedule_fitted and not replan:
        return saved.max_iters
    base = cfg.train.max_iters
    length = _estimated_length(saved, cfg) if replan and cfg.train.max_minutes is not None else base
    refit_scheduler(scheduler, cfg.solver, length, base)
    return length


def _estimated_length(saved: RunState, cfg: Config) -> int:
    """The run length that fits train.max_minutes at the speed the saved run averaged."""
    if saved.iteration <= 0 or saved.elapsed_s <= 0:
        return cfg.train.max_iters  # no speed known yet: the budget fits it once timed
    return iters_in_budget(saved.elapsed_s / saved.iteration, saved.elapsed_s, cfg.train.max_minutes * 60.0,
                           saved.iteration, cfg.train.max_iters)


def restore_rng(saved: RunState, rank: int, world_size: int) -> bool:
    """Put back this rank's RNG streams; False (fresh seeds stay) when saved with another world size."""
    if not saved.rng or len(saved.rng) != world_size:
        return False
    set_rng_state(saved.rng[rank])
    return True

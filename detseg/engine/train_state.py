"""What a training checkpoint holds and how a resume takes it back.

A checkpoint is the state dicts of the four stateful parts (model, optimizer, lr scheduler, loss
scaler) plus a RunState: where the run is (iteration, max_iters and whether that was fitted to a
time budget, training seconds so far, best metric, skipped steps), the RNG state of every rank, the
world size and the config it was trained with.

A resume checks the config against the saved one first: a change that would silently alter what an
iteration means is refused with a one-line ResumeError, a deliberate one (a longer run) is announced.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from detseg.config import Config
from detseg.engine.optim import refit_scheduler
from detseg.utils import distributed as du
from detseg.utils.rng import set_rng_state

# (section, key, "refuse" | "warn"): config changes between a checkpoint and its resume.
# batch_size: the sampler position is iteration * batch_size, so samples would be skipped or
# repeated and lr no longer matches the batch; num_classes: the heads' shapes change.
# max_iters: raising it is how a run is extended, so it is allowed but announced.
RESUME_CHECKS = (("data", "batch_size", "refuse"), ("model", "num_classes", "refuse"),
                 ("model", "arch", "refuse"), ("train", "max_iters", "warn"), ("solver", "lr", "warn"))


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
        if saved.config and old != new:
            (refused if problem == "refuse" else warned).append(f"{section}.{key} {old} -> {new}")
    if saved.world_size != world_size:
        warned.append(f"world size {saved.world_size} -> {world_size} (same global batch, "
                      f"per-rank data order and RNG streams change)")
    if refused:
        raise ResumeError(f"cannot resume from {path}: {'; '.join(refused)}. These change what an "
                          f"iteration means; start a new output_dir (model.weights={path}) instead.")
    return warned


def check_ranks_agree(iteration: int, checkpoint_path: Path) -> None:
    """Every rank must start where the others do (a collective: all ranks call it)."""
    iterations = du.all_gather_object(iteration)
    if len(set(iterations)) > 1:
        raise RuntimeError(f"ranks start at different iterations {iterations}: every node must "
                           f"read the same {checkpoint_path} (use a shared filesystem)")


def restore_schedule(saved: RunState, scheduler: torch.optim.lr_scheduler.LambdaLR, cfg: Config) -> int:
    """The run length to go on with. A schedule fitted to a time budget is kept as saved; otherwise
    the config is the truth (so a run can be extended by raising train.max_iters and resuming)."""
    if saved.schedule_fitted:
        return saved.max_iters
    base = cfg.train.max_iters
    refit_scheduler(scheduler, cfg.solver, base, base)
    return base


def restore_rng(saved: RunState, rank: int, world_size: int) -> bool:
    """Put back this rank's RNG streams; False (fresh seeds stay) when saved with another world size."""
    if not saved.rng or len(saved.rng) != world_size:
        return False
    set_rng_state(saved.rng[rank])
    return True

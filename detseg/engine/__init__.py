"""Training engine: optimizer and schedule, checkpoints, sampler, distributed helpers, trainer."""
from detseg.engine.checkpoint import CheckpointError, load_checkpoint, load_model_weights, save_checkpoint
from detseg.engine.distributed import (
    all_reduce_mean,
    barrier,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
    select_device,
)
from detseg.engine.optim import build_lr_lambda, build_optimizer, build_scheduler, iters_in_budget
from detseg.engine.sampler import InfiniteSampler
from detseg.engine.trainer import Trainer

__all__ = [
    "CheckpointError", "InfiniteSampler", "Trainer", "all_reduce_mean", "barrier", "build_lr_lambda",
    "build_optimizer", "build_scheduler", "get_rank", "get_world_size", "init_distributed",
    "is_main_process", "iters_in_budget", "load_checkpoint", "load_model_weights", "save_checkpoint",
    "select_device",
]

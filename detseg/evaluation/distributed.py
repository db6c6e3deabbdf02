"""Collect per-rank evaluation state on rank 0 (identity in a single process)."""
from __future__ import annotations

import torch.distributed as dist


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return _world_size() == 1 or dist.get_rank() == 0


def gather_results(results: list) -> list:
    """Concatenate every rank's ``results`` (rank order) on rank 0; other ranks get ``[]``.

    Must be called by all ranks: ``all_gather_object`` is a collective. It works
    with any picklable items and on every backend (gloo on CPU, NCCL on GPU).
    """
    world_size = _world_size()
    if world_size == 1:
        return results
    parts: list = [None] * world_size
    dist.all_gather_object(parts, results)
    if dist.get_rank() != 0:
        return []
    return [item for part in parts for item in part]

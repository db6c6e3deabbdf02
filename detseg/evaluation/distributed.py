"""Collect per-rank evaluation state on rank 0 (identity in a single process)."""
from __future__ import annotations

from detseg.utils.distributed import all_gather_object, get_rank, get_world_size, is_main_process

__all__ = ["gather_results", "is_main_process"]


def gather_results(results: list) -> list:
    """Concatenate every rank's ``results`` (rank order) on rank 0; other ranks get ``[]``.

    Must be called by all ranks: ``all_gather_object`` is a collective.
    """
    if get_world_size() == 1:
        return results
    parts = all_gather_object(results)
    return [item for part in parts for item in part] if get_rank() == 0 else []

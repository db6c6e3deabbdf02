"""One thread pool for the torchvision kernels detseg calls from several threads on the CPU.

torchvision's CPU RoIAlign, RoIPool and NMS run on one thread and release the GIL, so independent calls
(chunks of RoIs, groups of boxes) made from a pool of threads use every core.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

_pool: tuple[int, ThreadPoolExecutor] | None = None


def op_executor(workers: int) -> ThreadPoolExecutor:
    """The shared pool, with ``workers`` threads (made again when the count changes)."""
    global _pool
    if _pool is None or _pool[0] != workers:
        _pool = (workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detseg-ops"))
    return _pool[1]

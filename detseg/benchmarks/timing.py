"""Timers shared by the benchmark modules: interleaved rounds and per-module accumulators."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync() -> None:
    """CUDA kernels run asynchronously: a timer must wait for them to finish."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def interleaved_medians(contenders: dict[str, Callable[[], object]], rounds: int, calls: int,
                        warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each contender, timed in alternating rounds so that background load
    on a shared machine falls on all of them alike (the order flips every round)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(seconds_per_call(contenders[name], calls))
    return {name: statistics.median(s) for name, s in samples.items()}


class SectionTimer:
    """Accumulates wall time of module forwards (hooks) and bound methods (wrappers) by name,
    without touching the model's code; ``remove()`` restores everything."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self._starts: dict[str, list[float]] = {}
        self._undo: list[Callable[[], None]] = []

    def _enter(self, name: str) -> None:
        sync()
        self._starts.setdefault(name, []).append(time.perf_counter())

    def _exit(self, name: str) -> None:
        sync()
        elapsed = time.perf_counter() - self._starts[name].pop()
        self.totals[name] = self.totals.get(name, 0.0) + elapsed

    def module(self, name: str, module: torch.nn.Module) -> None:
        pre = module.register_forward_pre_hook(lambda *_: self._enter(name))
        post = module.register_forward_hook(lambda *_: self._exit(name))
        self._undo += [pre.remove, post.remove]

    def method(self, name: str, owner: object, attr: str) -> None:
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            self._enter(name)
            try:
                return original(*args, **kwargs)
            finally:
                self._exit(name)

        setattr(owner, attr, timed)  # an instance attribute shadows the class's method
        self._undo.append(lambda: delattr(owner, attr))

    def reset(self) -> None:
        self.totals = {}

    def remove(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo = []

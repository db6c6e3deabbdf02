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


def interleaved_samples(contenders: dict[str, Callable[[], object]], rounds: int, calls: int,
                        warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each contender in each round, timed in alternating rounds so that background
    load on a shared machine falls on all of them alike (the order flips every round)."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(seconds_per_call(contenders[name], calls))
    return samples


def interleaved_medians(contenders: dict[str, Callable[[], object]], rounds: int, calls: int,
                        warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each contender over interleaved rounds (interleaved_samples)."""
    return {name: statistics.median(s) for name, s in interleaved_samples(contenders, rounds, calls, warmup).items()}


def paired_ratio(samples: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of one contender's time over another's in the same round. A shared host's speed
    drifts (here by up to 40% over minutes): the two times of one round were taken seconds apart, the
    two medians possibly minutes apart, so the per-round ratio is the steadier estimate."""
    return statistics.median(a / b for a, b in zip(samples[numerator], samples[denominator]))


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

"""The wall-clock budget of a training job (train.max_minutes): its clock and its schedule refits.

Training time is the whole job's: what earlier (resumed-from) runs spent plus this run's, with the
time spent evaluating left out (an evaluation is not training and is not charged to the budget).

The run length is fitted to the budget: after FIT_SKIP warm-up iterations, FIT_WINDOW iterations are
timed and the run shortened to what fits in the time left; refits at REFIT_FRACTIONS of the budget,
each timed over the iterations since the previous fit, follow the real speed. A resumed run keeps
the schedule it saved (`fitted`) and does not refit, unless its plan changed (a new budget or run
length): then it is timed and fitted again like a new run. The decision is pure bookkeeping: the caller
makes the ranks agree on it (rank 0's) and applies it with `adopt`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

from detseg.engine.optim import iters_in_budget


@dataclass(frozen=True)
class Refit:
    max_iters: int  # the run length that fits the budget
    next_refit: int  # iteration of the next refit (-1: none planned)
    sec_per_iter: float  # the speed it was fitted to


class TimeBudget:
    FIT_SKIP = 5  # first iterations excluded from the speed estimate (allocator, cudnn autotune, workers starting)
    FIT_WINDOW = 20  # iterations timed to estimate seconds per iteration
    # The first estimate runs while the machine is still warming up (caches, page faults, other
    # jobs settling) and has been 10-20% pessimistic on a 2-core CPU; refits at these fractions of
    # the budget, each timed over the iterations since the previous fit, follow the real speed.
    REFIT_FRACTIONS = (0.3, 0.6)

    def __init__(self, max_minutes: float | None, max_iters: int, clock: Callable[[], float]):
        self.seconds = None if max_minutes is None else max_minutes * 60.0
        self.base_max_iters = max_iters  # train.max_iters: a fit never goes above it
        self.clock = clock
        self.elapsed_before = 0.0  # seconds spent by earlier (resumed-from) runs of this job
        self.eval_seconds = 0.0  # spent evaluating in this run
        self.fitted = False
        self._mark: tuple[int, float] | None = None  # (iteration, training clock) the speed is timed from
        self._refits_left = list(self.REFIT_FRACTIONS)
        self._next_refit = -1
        self.start(0)

    def start(self, iteration: int) -> None:
        """The run's training starts now, at ``iteration``."""
        self.start_time, self.start_iter = self.clock(), iteration

    def resume(self, elapsed_s: float, fitted: bool) -> None:
        """Go on from an earlier run's ``elapsed_s``; not ``fitted``: time the speed and fit again, with
        only the refits at fractions of the budget not yet spent."""
        self.elapsed_before, self.fitted = elapsed_s, fitted
        if self.seconds is not None:
            self._refits_left = [f for f in self.REFIT_FRACTIONS if f * self.seconds > elapsed_s]

    def elapsed(self) -> float:
        """Training seconds of the whole job (earlier resumed-from runs included), evaluations left out."""
        return self.elapsed_before + (self._train_clock() - self.start_time)

    @contextlib.contextmanager
    def not_charged(self) -> Iterator[None]:
        """Time spent inside (an evaluation) is not training time."""
        start = self.clock()
        try:
            yield
        finally:
            self.eval_seconds += self.clock() - start

    def out_of_time(self) -> bool:
        return self.seconds is not None and self.elapsed() >= self.seconds

    def refit_due(self, iteration: int) -> Refit | None:
        """The run length to fit to at ``iteration`` (after its step), or None when no fit is due."""
        if self.seconds is None:
            return None
        done = iteration - self.start_iter
        if done == self.FIT_SKIP and not self.fitted:
            self._mark = (iteration, self._train_clock())
        first = not self.fitted and self._mark is not None and done - self.FIT_SKIP == self.FIT_WINDOW
        if not (first or iteration == self._next_refit):
            return None
        mark_iter, mark_time = self._mark
        sec_per_iter = (self._train_clock() - mark_time) / (iteration - mark_iter)
        self._mark = (iteration, self._train_clock())
        elapsed = self.elapsed()
        fitted = iters_in_budget(sec_per_iter, elapsed, self.seconds, iteration, self.base_max_iters)
        return Refit(fitted, self._plan_next(iteration, elapsed, sec_per_iter), sec_per_iter)

    def adopt(self, refit: Refit) -> None:
        """Take the refit every rank agreed on."""
        self.fitted, self._next_refit = True, refit.next_refit

    def _plan_next(self, iteration: int, elapsed: float, sec_per_iter: float) -> int:
        """The iteration expected to have spent the next of REFIT_FRACTIONS of the budget."""
        if not self._refits_left:
            return -1
        wait = (self._refits_left.pop(0) * self.seconds - elapsed) / max(sec_per_iter, 1e-9)
        return iteration + max(1, int(wait))

    def _train_clock(self) -> float:
        return self.clock() - self.eval_seconds

"""TimeBudget on a fake clock: what is charged, when the run stops, how the run length is fitted."""
from __future__ import annotations

from detseg.engine.budget import Refit, TimeBudget


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(budget: TimeBudget, clock: Clock, sec_per_iter: float, iters: int, eval_at=(), eval_s: float = 0.0,
         start: int = 0):
    """Step ``iters`` iterations after ``start`` at ``sec_per_iter``, evaluating (``eval_s`` seconds) after
    those in ``eval_at``; returns (iteration, refit) for every fit, each adopted as the trainer does."""
    fits = []
    for iteration in range(start + 1, start + iters + 1):
        clock.now += sec_per_iter
        refit = budget.refit_due(iteration)
        if refit is not None:
            budget.adopt(refit)
            fits.append((iteration, refit))
        if iteration in eval_at:
            with budget.not_charged():
                clock.now += eval_s
    return fits


def test_evaluation_time_is_not_charged():
    clock = Clock()
    budget = TimeBudget(max_minutes=0.5, max_iters=100, clock=clock)
    clock.now = 100.0
    budget.start(0)
    clock.now = 110.0
    with budget.not_charged():
        clock.now = 140.0
    clock.now = 145.0
    assert budget.elapsed() == 15.0 and budget.eval_seconds == 30.0
    assert not budget.out_of_time()  # 45 s of wall clock, 15 of training, in a 30 s budget
    clock.now = 160.0
    assert budget.elapsed() == 30.0 and budget.out_of_time()


def test_earlier_runs_of_the_job_are_charged():
    clock = Clock()
    budget = TimeBudget(max_minutes=1.0, max_iters=100, clock=clock)
    budget.resume(elapsed_s=55.0, fitted=True)
    budget.start(40)
    clock.now = 4.0
    assert budget.elapsed() == 59.0 and not budget.out_of_time()
    clock.now = 5.0
    assert budget.out_of_time()


def test_no_budget_never_runs_out_nor_refits():
    clock = Clock()
    budget = TimeBudget(max_minutes=None, max_iters=100, clock=clock)
    assert _run(budget, clock, sec_per_iter=1e6, iters=60) == []
    assert not budget.out_of_time() and not budget.fitted


def test_fit_after_the_timed_window_and_refits_at_30_and_60_percent():
    clock = Clock()
    budget = TimeBudget(max_minutes=1.0, max_iters=1000, clock=clock)
    fits = _run(budget, clock, sec_per_iter=0.5, iters=120)
    # iteration 25 (5 skipped + 20 timed) at 12.5 s: 25 + 47.5 s // 0.5 = 120 iterations; the next fit where
    # 30% (18 s) should be spent: 25 + 5.5 // 0.5 = 36; from there 36 + 18 // 0.5 = 72 (60%: 36 s), the last
    assert fits == [(25, Refit(120, 36, 0.5)), (36, Refit(120, 72, 0.5)), (72, Refit(120, -1, 0.5))]
    assert budget.fitted


def test_evaluation_inside_the_timed_window_does_not_slow_the_estimate():
    clock = Clock()
    budget = TimeBudget(max_minutes=1.0, max_iters=1000, clock=clock)
    fits = _run(budget, clock, sec_per_iter=0.5, iters=25, eval_at={10, 20}, eval_s=30.0)
    assert fits == [(25, Refit(120, 36, 0.5))]


def test_the_fit_starts_where_the_run_started_and_never_exceeds_max_iters():
    clock = Clock()
    budget = TimeBudget(max_minutes=1.0, max_iters=40, clock=clock)
    budget.start(10)
    fits = _run(budget, clock, sec_per_iter=0.1, iters=30, start=10)
    # 10 + 5 skipped + 20 timed; the 57.5 s left at 0.1 s/it would be far more than 40 iterations
    assert [(iteration, refit.max_iters) for iteration, refit in fits][0] == (35, 40)


def test_a_resumed_fitted_run_keeps_its_schedule():
    clock = Clock()
    budget = TimeBudget(max_minutes=1.0, max_iters=1000, clock=clock)
    budget.resume(elapsed_s=20.0, fitted=True)
    budget.start(70)
    assert _run(budget, clock, sec_per_iter=0.5, iters=200, start=70) == []

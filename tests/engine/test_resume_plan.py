"""Resume with a changed plan (issue 22 item 2): a run trained N iterations and resumed with train.max_iters 2N,
compared with a run planned for 2N from the start.

What is equal: the resumed run's first N iterations are the N-run's (its lr is the N plan's at each of them);
from iteration N on its lr is, at every iteration, exactly the 2N plan's closed form (build_lr_lambda), which is
also what the run planned for 2N logs there. Where the two plans agree on the first N iterations (a step
schedule whose milestones lie beyond N), the resumed run is bit-equal to the planned one. What differs: under
cosine the first N iterations ran another schedule, so the weights after 2N differ.
"""
from __future__ import annotations

import json

import pytest
import torch
from engine_helpers import FakeClock, loader_factory, make_cfg, make_model

from detseg.engine.optim import build_lr_lambda
from detseg.engine.train_state import ResumeError
from detseg.engine.trainer import Trainer
from detseg.utils.checkpoint import load_checkpoint

N = 6


def _cfg(path, max_iters: int, schedule: str, **train):
    solver = {"schedule": schedule, "warmup_iters": 2, "steps": [9], "min_lr_factor": 0.0}
    return make_cfg(path, max_iters=max_iters, solver=solver, train={"log_period": 1, **train})


def _lrs(run_dir) -> dict[int, float]:
    """The lr each logged iteration used (iteration i steps with the schedule at i - 1)."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["iter"]: r["lr"] for r in lines if r["type"] == "train"}


def _extend(tmp_path, schedule: str) -> tuple[Trainer, Trainer, list[str]]:
    """(the run extended from N to 2N by a resume, the run planned for 2N, what the resume said)."""
    Trainer(_cfg(tmp_path / "extended", N, schedule), make_model(0), loader_factory()).train()
    extended = Trainer(_cfg(tmp_path / "extended", 2 * N, schedule), make_model(seed=123), loader_factory())
    said = []
    extended._say = said.append
    extended.train(resume=True)
    planned = Trainer(_cfg(tmp_path / "planned", 2 * N, schedule), make_model(0), loader_factory())
    planned.train()
    return extended, planned, said


def _same_weights(a: Trainer, b: Trainer) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_a_longer_cosine_run_refits_the_schedule_from_where_it_stopped(tmp_path):
    extended, planned, said = _extend(tmp_path, "cosine")
    assert f"resume: plan changed: train.max_iters {N} -> {2 * N}; schedule re-fitted from iteration {N} to {2 * N}" \
        in said
    assert extended.iteration == extended.max_iters == 2 * N
    solver = extended.cfg.solver
    short, long = build_lr_lambda(solver, N), build_lr_lambda(solver, 2 * N)
    lrs, planned_lrs = _lrs(tmp_path / "extended"), _lrs(tmp_path / "planned")
    for it in range(1, N + 1):  # the first N iterations ran the N plan, not the 2N one (after warm-up)
        assert lrs[it] == 0.1 * short(it - 1)
    assert all(lrs[it] != planned_lrs[it] for it in range(4, N + 1))
    for it in range(N + 1, 2 * N + 1):  # then, at each iteration, the 2N plan's closed form
        assert lrs[it] == 0.1 * long(it - 1) == planned_lrs[it]
    assert extended.scheduler.last_epoch == planned.scheduler.last_epoch == 2 * N
    assert not _same_weights(extended, planned)  # the first N iterations took other steps


def test_a_longer_step_run_whose_plans_agree_so_far_equals_the_planned_run(tmp_path):
    extended, planned, said = _extend(tmp_path, "step")  # warm-up 2 and milestone 9 in both plans
    assert any(line.startswith("resume: plan changed: train.max_iters") for line in said)
    assert _lrs(tmp_path / "extended") == _lrs(tmp_path / "planned")
    assert _same_weights(extended, planned)
    sa, sb = extended.optimizer.state_dict()["state"], planned.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"]) for k in sa)


def test_new_milestones_take_effect_from_the_current_iteration(tmp_path):
    Trainer(_cfg(tmp_path, N, "step"), make_model(0), loader_factory()).train()
    cfg = _cfg(tmp_path, 2 * N, "step")
    cfg.solver.steps = [8, 10]
    said = []
    trainer = Trainer(cfg, make_model(0), loader_factory())
    trainer._say = said.append
    trainer.train(resume=True)
    assert (f"resume: plan changed: train.max_iters {N} -> {2 * N}, solver.steps [9] -> [8, 10]; schedule re-fitted "
            f"from iteration {N} to {2 * N}") in said
    lrs = _lrs(tmp_path)
    assert [lrs[it] for it in range(N + 1, 2 * N + 1)] == [0.1 * build_lr_lambda(cfg.solver, 2 * N)(it - 1)
                                                          for it in range(N + 1, 2 * N + 1)]
    assert lrs[9] == pytest.approx(0.01) and lrs[11] == pytest.approx(0.001)


def test_a_changed_architecture_is_still_refused_in_one_line(tmp_path):
    Trainer(_cfg(tmp_path, N, "step"), make_model(0), loader_factory()).train()
    cfg = _cfg(tmp_path, 2 * N, "step")
    cfg.model.arch = "ssd"
    with pytest.raises(ResumeError) as info:
        Trainer(cfg, make_model(0), loader_factory()).train(resume=True)
    message = str(info.value)
    assert "\n" not in message and "model.arch faster_rcnn -> ssd" in message and "--init-from" in message
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == N  # the run is left as it was


def test_a_longer_time_budget_is_fitted_again(tmp_path):
    def cfg(minutes):
        return make_cfg(tmp_path, max_iters=1000, solver={"steps": [500, 800], "warmup_iters": 100},
                        train={"max_minutes": minutes, "log_period": 1000, "checkpoint_period": 50})

    clock = FakeClock(sec_per_forward=0.5)  # a 1 min budget at 0.5 s/it: 120 iterations
    first = Trainer(cfg(1.0), make_model(0, clock=clock), loader_factory(), clock=clock)
    first.train()
    assert first.iteration == first.max_iters == 120
    clock = FakeClock(sec_per_forward=0.5)
    trainer = Trainer(cfg(2.0), make_model(0, clock=clock), loader_factory(), clock=clock)
    said = []
    trainer._say = said.append
    trainer.train(resume=True)
    # 60 s spent at 0.5 s/it on average: the 60 s left hold 120 more, which the re-timing confirms
    assert ("resume: plan changed: train.max_minutes 1.0 -> 2.0; schedule re-fitted from iteration 120 to 240, "
            "to be re-timed against the 2.0 min budget") in said
    assert any(line.startswith("time budget 2.0 min") and line.endswith("240 -> 240") for line in said)
    assert trainer.iteration == trainer.max_iters == 240
    schedule = trainer.scheduler.lr_lambdas[0]
    assert (schedule.max_iters, schedule.steps, schedule.warmup_iters) == (240, [120, 192], 24)

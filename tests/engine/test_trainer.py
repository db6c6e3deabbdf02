import json
import math
import random

import numpy as np
import pytest
import torch
from engine_helpers import DummyDetector, FakeClock, loader_factory, make_cfg, make_model

from detseg.config import load_config
from detseg.engine.trainer import Trainer
from detseg.utils.checkpoint import load_checkpoint


class Preempted(Exception):
    pass


def preempting(factory, after: int):
    """A loader that dies when asked for batch number after+1, like a killed job."""
    served = [0]

    def die_after(batches):
        for batch in batches:
            if served[0] == after:
                raise Preempted
            served[0] += 1
            yield batch

    # The loader is built eagerly, as a real factory does: the trainer builds it under
    # preserved RNG (a DataLoader draws a seed when iterated) and a lazy generator would
    # move that draw into the training stream.
    return lambda start_index: die_after(iter(factory(start_index)))


def noisy_eval(model):
    """An evaluation that draws from every RNG; it must not shift training's streams."""
    torch.rand(3), random.random(), np.random.rand()
    return {"bbox": {"AP": float(model.cls.weight.sum())}}


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _assert_same_training_state(a: Trainer, b: Trainer):
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(pa, pb), name
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    for key in sa["state"]:
        for field, value in sa["state"][key].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(sb["state"][key][field])), (key, field)
    assert [g["lr"] for g in sa["param_groups"]] == [g["lr"] for g in sb["param_groups"]]
    assert a.scheduler.last_epoch == b.scheduler.last_epoch and a.iteration == b.iteration


@pytest.mark.parametrize("k, solver", [
    (4, {"warmup_iters": 10, "steps": [6]}),  # resume inside warm-up
    (5, {"warmup_iters": 2, "schedule": "cosine", "optimizer": "adamw", "clip_grad_norm": 1.0}),
])
def test_resume_is_exact(tmp_path, k, solver):
    def cfg(name):
        return make_cfg(tmp_path / name, max_iters=2 * k, solver=solver,
                        train={"checkpoint_period": k, "eval_period": 3})

    straight = Trainer(cfg("straight"), make_model(0), loader_factory(), noisy_eval)
    straight.train()
    with pytest.raises(Preempted):
        Trainer(cfg("resumed"), make_model(0), preempting(loader_factory(), k), noisy_eval).train()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["iteration"] == k
    resumed = Trainer(cfg("resumed"), make_model(seed=123), loader_factory(), noisy_eval)
    resumed.train(resume=True)
    _assert_same_training_state(straight, resumed)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    trainer = Trainer(make_cfg(tmp_path, max_iters=2), make_model(0), loader_factory())
    trainer.train(resume=True)
    assert trainer.iteration == 2


def test_non_finite_loss_raises_with_iteration_and_terms(tmp_path):
    cfg = make_cfg(tmp_path, max_iters=6, train={"checkpoint_period": 1})
    trainer = Trainer(cfg, make_model(0, nan_at=3), loader_factory())
    with pytest.raises(FloatingPointError, match=r"iteration 3\b.*loss_dummy_cls=[0-9.]+, loss_dummy_reg=nan"):
        trainer.train()
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())  # no NaN step taken


def test_metrics_jsonl_config_and_tensorboard(tmp_path):
    cfg = make_cfg(tmp_path, max_iters=6)
    Trainer(cfg, make_model(0), loader_factory()).train()
    records = _read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["iter"] for r in records] == [2, 4, 6]
    keys = {"type", "iter", "lr", "loss", "loss_dummy_cls", "loss_dummy_reg", "time", "data_time"}
    assert all(set(r) == keys for r in records)
    assert records[0]["loss"] == pytest.approx(records[0]["loss_dummy_cls"] + records[0]["loss_dummy_reg"])
    assert load_config(tmp_path / "config.yaml") == cfg
    assert any((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 6


def test_evaluation_records_and_best_checkpoint(tmp_path):
    aps = iter([0.1, 0.3, 0.2])
    modes = []

    def evaluate(model):
        modes.append(model.training)
        return {"bbox": {"AP": next(aps), "AP50": 0.5}}

    cfg = make_cfg(tmp_path, max_iters=6, train={"eval_period": 2, "checkpoint_period": 2})
    trainer = Trainer(cfg, make_model(0), loader_factory(), evaluate)
    metrics = trainer.train()
    assert modes == [False, False, False] and trainer.model.training
    assert metrics == {"bbox": {"AP": 0.2, "AP50": 0.5}}
    evals = [r for r in _read_jsonl(tmp_path / "metrics.jsonl") if r["type"] == "eval"]
    assert [(r["iter"], r["bbox"]["AP"]) for r in evals] == [(2, 0.1), (4, 0.3), (6, 0.2)]
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["iteration"] == 4 and best["best_metric"] == 0.3
    assert load_checkpoint(tmp_path / "last.pt")["best_metric"] == 0.3


def test_clip_grad_norm_bounds_the_update(tmp_path):
    solver = {"clip_grad_norm": 1e-3, "momentum": 0.0, "weight_decay": 0.0, "warmup_iters": 0}
    trainer = Trainer(make_cfg(tmp_path, max_iters=1, solver=solver), make_model(0), loader_factory())
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    step = math.sqrt(sum(((p - b) ** 2).sum().item() for p, b in zip(trainer.model.parameters(), before)))
    assert 0 < step <= 0.1 * 1e-3 * (1 + 1e-4)


def _budget_cfg(tmp_path, **train):
    return make_cfg(tmp_path, max_iters=1000, solver={"steps": [500, 800], "warmup_iters": 100},
                    train={"max_minutes": 1.0, "log_period": 1000, "checkpoint_period": 50, **train})


def test_schedule_is_fitted_to_the_time_budget(tmp_path):
    clock = FakeClock(sec_per_forward=0.5)  # 60 s budget at 0.5 s/it -> 120 iterations
    trainer = Trainer(_budget_cfg(tmp_path), make_model(0, clock=clock), loader_factory(), clock=clock)
    trainer.train()
    assert trainer.iteration == trainer.max_iters == 120
    schedule = trainer.scheduler.lr_lambdas[0]
    assert schedule.steps == [60, 96] and schedule.warmup_iters == 12 and schedule.max_iters == 120
    assert _read_jsonl(tmp_path / "metrics.jsonl")[-1]["lr"] == pytest.approx(0.1 * 0.1**2)
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["max_iters"] == 120 and saved["schedule_fitted"] is True


def test_fitted_schedule_survives_resume(tmp_path):
    cfg = _budget_cfg(tmp_path)
    clock = FakeClock(sec_per_forward=0.5)
    with pytest.raises(Preempted):
        Trainer(cfg, make_model(0, clock=clock), preempting(loader_factory(), 70), clock=clock).train()
    clock = FakeClock(sec_per_forward=0.5)  # a new process: the budget continues from the saved 25 s
    trainer = Trainer(cfg, make_model(0, clock=clock), loader_factory(), clock=clock)
    trainer.train(resume=True)
    assert trainer.iteration == trainer.max_iters == 120
    assert trainer.scheduler.lr_lambdas[0].steps == [60, 96]


class _SlowingDetector(DummyDetector):
    def forward(self, batch, mode="loss"):
        if self.forwards >= 80:
            self.clock.sec_per_forward = 2.0  # the estimate turns out far too optimistic
        return super().forward(batch, mode)


class _SpeedingDetector(DummyDetector):
    def forward(self, batch, mode="loss"):
        if self.forwards >= 25:
            self.clock.sec_per_forward = 0.4  # the first window ran slow (a machine warming up)
        return super().forward(batch, mode)


def test_refit_gives_back_the_time_a_slow_start_took(tmp_path):
    clock = FakeClock(sec_per_forward=0.6)
    trainer = Trainer(_budget_cfg(tmp_path), _SpeedingDetector(clock=clock), loader_factory(), clock=clock)
    said = []
    trainer._say = said.append
    trainer.train()
    fits = [line for line in said if line.startswith("time budget")]
    assert [f.split("(")[1].split(")")[0] for f in fits] == ["iteration 25", "iteration 30", "iteration 77"]
    assert fits[0].endswith("1000 -> 100") and fits[1].endswith("100 -> 137") and fits[2].endswith("137 -> 137")
    # first fit at iteration 25 (15 s, 0.6 s/it): 25 + 45 // 0.6 = 100 iterations, refit planned where
    # 30% of the budget should be spent: 25 + 3 s / 0.6 = 30. There 5 iterations took 0.4 s each:
    # 30 + 43 // 0.4 = 137, next refit at 30 + (36 - 17) s // 0.4 = 77 (35.8 s), which confirms 137
    # (77 + 24.2 // 0.4); the run ends at 59.8 s
    assert trainer.iteration == trainer.max_iters == 137
    assert clock.now <= 60.0
    assert load_checkpoint(tmp_path / "last.pt")["max_iters"] == 137


def test_run_stops_when_the_wall_clock_runs_out(tmp_path):
    clock = FakeClock(sec_per_forward=0.5)
    torch.manual_seed(0)
    trainer = Trainer(_budget_cfg(tmp_path), _SlowingDetector(clock=clock), loader_factory(), clock=clock)
    trainer.train()
    # every fit (iterations 25, 36 and 72: 12.5, 18 and 36 s) sees 0.5 s/it: 120 iterations. From iteration 80 (40 s) a step
    # takes 2 s, after the last refit: the check before iteration 91 sees 60 s and ends the run there.
    assert trainer.max_iters == 120 and trainer.iteration == 90
    assert load_checkpoint(tmp_path / "last.pt")["iteration"] == 90

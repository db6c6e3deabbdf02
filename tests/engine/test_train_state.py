"""RunState and TrainingParts: a checkpoint round trip, and what a resume refuses, announces and restores."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from detseg.config import Config, config_to_dict
from detseg.engine.optim import build_optimizer, build_scheduler
from detseg.engine.train_state import (ResumeError, RunState, TrainingParts, check_model_fits, check_ranks_agree,
                                       check_resume, plan_changes, restore_rng, restore_schedule)
from detseg.utils.checkpoint import load_checkpoint, save_checkpoint
from detseg.utils.rng import get_rng_state


def _cfg(**train) -> Config:
    cfg = Config()
    cfg.data.batch_size, cfg.solver.lr, cfg.solver.steps = 4, 0.1, [6]
    cfg.train.max_iters = 8
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def _parts(cfg: Config, seed: int, steps: int) -> TrainingParts:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    optimizer = build_optimizer(model, cfg.solver)
    parts = TrainingParts(model, optimizer, build_scheduler(optimizer, cfg.solver, cfg.train.max_iters),
                          torch.amp.GradScaler("cpu", init_scale=2.0**7))
    for _ in range(steps):
        parts.scaler.scale(model(torch.randn(5, 3)).sum()).backward()
        parts.scaler.step(optimizer)
        parts.scaler.update()
        parts.scheduler.step()
    return parts


def _assert_same(a, b, where="") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _run_state(cfg: Config, **changes) -> RunState:
    fields = dict(iteration=6, max_iters=120, schedule_fitted=True, elapsed_s=25.5, best_metric=0.3,
                  skipped_steps=2, world_size=1, rng=[get_rng_state()], config=config_to_dict(cfg))
    return RunState(**{**fields, **changes})


def test_checkpoint_round_trip_is_equal_field_by_field(tmp_path):
    cfg = _cfg()
    saved_parts, state = _parts(cfg, seed=0, steps=3), _run_state(cfg)
    save_checkpoint(tmp_path / "last.pt", state.checkpoint(saved_parts))
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    loaded = RunState.from_checkpoint(checkpoint)
    for name in state.__dataclass_fields__:
        _assert_same(getattr(loaded, name), getattr(state, name), name)
    fresh = _parts(cfg, seed=1, steps=0)
    fresh.load(checkpoint)
    _assert_same(fresh.state_dicts(), saved_parts.state_dicts())
    assert fresh.scaler.get_scale() == saved_parts.scaler.get_scale()


def test_a_checkpoint_without_the_newer_entries_reads_with_defaults():
    rng = [get_rng_state(), get_rng_state()]
    loaded = RunState.from_checkpoint({"iteration": 3, "max_iters": 8, "rng": rng})
    assert (loaded.iteration, loaded.max_iters, loaded.schedule_fitted, loaded.elapsed_s) == (3, 8, False, 0.0)
    assert (loaded.best_metric, loaded.skipped_steps, loaded.world_size, loaded.config) == (None, 0, 2, {})


@pytest.mark.parametrize("section, key, value", [("data", "batch_size", 8), ("model", "num_classes", 7),
                                                 ("model", "arch", "retinanet"), ("model", "class_names", ["b", "a"])])
def test_resume_refuses_what_changes_an_iteration_in_one_line(section, key, value):
    cfg = _cfg()
    cfg.model.class_names = ["a", "b"]
    saved = _run_state(cfg)
    old = getattr(getattr(cfg, section), key)
    setattr(getattr(cfg, section), key, value)
    path = Path("run/last.pt")
    with pytest.raises(ResumeError) as info:
        check_resume(path, cfg, saved, world_size=1)
    assert str(info.value) == (f"cannot resume from {path}: {section}.{key} {old} -> {value}. These change what "
                               f"an iteration means; start a new run from its weights instead (--init-from {path}).")


def test_resume_announces_a_longer_run_another_lr_and_world_size():
    cfg = _cfg()
    saved = _run_state(cfg, world_size=2)
    cfg.train.max_iters, cfg.solver.lr = 12, 0.05
    assert check_resume(Path("last.pt"), cfg, saved, world_size=1) == [
        "solver.lr 0.1 -> 0.05", "world size 2 -> 1 (same global batch, per-rank data order and RNG streams change)"]
    assert plan_changes(cfg, saved) == ["train.max_iters 8 -> 12"]


def test_plan_changes_name_run_length_budget_and_schedule():
    cfg = _cfg()
    saved = _run_state(cfg)
    assert plan_changes(cfg, saved) == [] and plan_changes(cfg, _run_state(cfg, config={})) == []
    cfg.train.max_minutes, cfg.solver.steps, cfg.solver.schedule = 30.0, [10], "cosine"
    assert plan_changes(cfg, saved) == ["train.max_minutes None -> 30.0", "solver.schedule step -> cosine",
                                        "solver.steps [6] -> [10]"]


def test_a_checkpoint_without_class_names_is_not_refused_for_names():
    cfg = _cfg()
    saved = _run_state(cfg)  # class_names None: an older run, or one whose names were never settled
    cfg.model.class_names = ["a", "b"]
    assert check_resume(Path("last.pt"), cfg, saved, world_size=1) == []


def test_weights_of_another_shape_are_refused_in_one_line():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    saved = {**model.state_dict(), "1.weight": torch.zeros(5, 4), "2.bias": torch.zeros(1)}
    del saved["0.bias"]
    path = Path("run/last.pt")
    with pytest.raises(ResumeError) as info:
        check_model_fits(path, model, saved)
    assert str(info.value) == (f"cannot resume from {path}: the model this config builds does not fit its weights "
                               f"(1 of another shape, e.g. 1.weight [5, 4] -> [2, 4]; 1 missing, 1 unexpected); "
                               f"start a new run from its weights instead (--init-from {path}).")
    check_model_fits(path, model, model.state_dict())  # the same model fits


def test_a_checkpoint_without_a_config_is_not_checked():
    cfg = _cfg()
    cfg.data.batch_size = 16
    assert check_resume(Path("last.pt"), cfg, _run_state(cfg, config={}), world_size=1) == []


def test_ranks_agree_in_one_process():
    check_ranks_agree(5, Path("last.pt"))  # a single process always agrees with itself


def test_a_fitted_schedule_is_kept_and_another_follows_the_config():
    cfg = _cfg(max_iters=20)
    parts = _parts(cfg, seed=0, steps=0)
    parts.scheduler.lr_lambdas[0].max_iters = 13
    assert restore_schedule(_run_state(cfg, max_iters=13), parts.scheduler, cfg) == 13
    assert parts.scheduler.lr_lambdas[0].max_iters == 13
    assert restore_schedule(_run_state(cfg, schedule_fitted=False, max_iters=13), parts.scheduler, cfg) == 20
    assert parts.scheduler.lr_lambdas[0].max_iters == 20


def test_a_changed_plan_refits_even_a_fitted_schedule():
    cfg = _cfg(max_iters=40)
    parts = _parts(cfg, seed=0, steps=0)
    assert restore_schedule(_run_state(cfg, max_iters=13), parts.scheduler, cfg, replan=True) == 40
    assert parts.scheduler.lr_lambdas[0].max_iters == 40 and parts.scheduler.lr_lambdas[0].steps == [6]


def test_a_changed_budget_starts_from_the_saved_average_speed():
    cfg = _cfg(max_iters=1000, max_minutes=1.0)
    parts = _parts(cfg, seed=0, steps=0)
    # 20 iterations in 30 s (1.5 s/it): the 30 s left of a 60 s budget hold 20 more
    saved = _run_state(cfg, iteration=20, elapsed_s=30.0, max_iters=20)
    assert restore_schedule(saved, parts.scheduler, cfg, replan=True) == 40
    schedule = parts.scheduler.lr_lambdas[0]
    assert schedule.max_iters == 40 and schedule.steps == [0]  # steps keep their fraction (6/1000) of the run
    assert restore_schedule(_run_state(cfg, iteration=0, elapsed_s=0.0), parts.scheduler, cfg, replan=True) == 1000


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(1).item()


def test_rng_streams_come_back_for_the_same_world_size():
    state = _run_state(_cfg(), rng=[get_rng_state()])
    expected = _draws()
    _draws()
    assert restore_rng(state, rank=0, world_size=1) and _draws() == expected
    assert not restore_rng(state, rank=0, world_size=2)
    assert not restore_rng(_run_state(_cfg(), rng=None), rank=0, world_size=1)

"""Issue 7 items 9-12: resume with a changed config, non-finite loss / gradient policy, AMP loss scaling on CPU."""
from __future__ import annotations

import json
import math

import pytest
import torch

from detseg.engine.trainer import Trainer
from detseg.utils.checkpoint import load_checkpoint
from detseg.utils.checkpoint import save_checkpoint
from detseg.engine.trainer import ResumeError
from tests.engine.engine_helpers import DummyDetector, loader_factory, make_cfg


class FaultyDetector(DummyDetector):
    """NaN loss on the forwards in ``nan_on``; an inf gradient on ``cls.weight`` while ``inf_grad[0]``."""

    def __init__(self, nan_on=(), **kwargs):
        super().__init__(**kwargs)
        self.nan_on, self.inf_grad = set(nan_on), [False]
        self.cls.weight.register_hook(lambda g: g * math.inf if self.inf_grad[0] else g)

    def forward(self, batch, mode="loss"):
        losses = super().forward(batch, mode)
        if mode == "loss" and self.forwards in self.nan_on:
            losses["loss_dummy_reg"] = losses["loss_dummy_reg"] * float("nan")
        return losses


def _model(**kwargs) -> FaultyDetector:
    torch.manual_seed(0)
    return FaultyDetector(**kwargs)


def _all_finite(state: dict) -> bool:
    return all(torch.isfinite(v.float()).all() for v in state.values())


# ------------------------------------------------------------------ item 10: non-finite loss
def test_nan_loss_stops_and_leaves_the_last_good_checkpoint(tmp_path):
    cfg = make_cfg(tmp_path, max_iters=8, train={"checkpoint_period": 2})
    with pytest.raises(FloatingPointError, match=r"iteration 5 .*loss_dummy_reg=nan"):
        Trainer(cfg, _model(nan_on={5}), loader_factory()).train()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["iteration"] == 4 and _all_finite(state["model"])


def test_nan_loss_is_skipped_counted_and_logged_under_skip(tmp_path):
    cfg = make_cfg(tmp_path, max_iters=6, train={"on_nonfinite": "skip"})
    trainer = Trainer(cfg, _model(nan_on={3}), loader_factory())
    trainer.train()
    assert trainer.iteration == 6 and trainer.skipped_steps == 1
    assert _all_finite(trainer.model.state_dict())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["skipped_steps"] == 1 and all(math.isfinite(r["loss"]) for r in records)
    assert load_checkpoint(tmp_path / "last.pt")["skipped_steps"] == 1


def test_unknown_nonfinite_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="on_nonfinite"):
        Trainer(make_cfg(tmp_path, train={"on_nonfinite": "ignore"}), _model(), loader_factory())


# ------------------------------------------------------------------ item 12: clipping with a non-finite norm
def _manual(trainer: Trainer):
    """Set the trainer up for driving _run_step by hand; returns a batch iterator."""
    trainer._setup()
    trainer.ddp_model, trainer.start_time = trainer.model, trainer.clock()
    return iter(trainer.loader_factory(0))


def _params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_non_finite_gradient_norm_follows_the_policy(tmp_path, policy):
    cfg = make_cfg(tmp_path, solver={"clip_grad_norm": 1.0}, train={"on_nonfinite": policy})
    trainer = Trainer(cfg, _model(), loader_factory())
    batches = _manual(trainer)
    trainer._run_step(next(batches))
    before = _params(trainer.model)
    trainer.model.inf_grad[0] = True
    if policy == "error":
        with pytest.raises(FloatingPointError, match="non-finite gradient norm"):
            trainer._run_step(next(batches))
    else:
        assert trainer._run_step(next(batches)) is None and trainer.skipped_steps == 1
        trainer.model.inf_grad[0] = False
        assert trainer._run_step(next(batches)) is not None  # training goes on afterwards
    after = _params(trainer.model) if policy == "error" else before
    for name in before:
        assert torch.equal(before[name], after[name]), name


# ------------------------------------------------------------------ item 11: GradScaler on the CPU
class ScaledTrainer(Trainer):
    """fp16 autocast is CUDA-only here, but GradScaler("cpu") exercises the same step code."""

    def _make_scaler(self):
        return torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1000)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_inf_gradient_skips_the_step_halves_the_scale_and_survives_resume(tmp_path, clip):
    cfg = make_cfg(tmp_path, solver={"clip_grad_norm": clip})
    trainer = ScaledTrainer(cfg, _model(), loader_factory())
    batches = _manual(trainer)
    trainer._run_step(next(batches))
    before, scale = _params(trainer.model), trainer.scaler.get_scale()
    trainer.model.inf_grad[0] = True
    trainer._run_step(next(batches))
    for name, value in _params(trainer.model).items():
        assert torch.equal(value, before[name]), name
    assert trainer.scaler.get_scale() == scale / 2
    trainer.iteration = 2
    trainer._save("last.pt")
    resumed = ScaledTrainer(cfg, _model(), loader_factory())
    resumed._setup()
    resumed._resume()
    assert resumed.scaler.state_dict() == trainer.scaler.state_dict()


# ------------------------------------------------------------------ item 9: resume with another config
def _trained(tmp_path, **sections):
    cfg = make_cfg(tmp_path, max_iters=4, **sections)
    Trainer(cfg, _model(), loader_factory()).train()
    return cfg


@pytest.mark.parametrize("section, key, value", [("data", "batch_size", 8), ("model", "num_classes", 7)])
def test_resume_refuses_a_changed_batch_size_or_class_count(tmp_path, section, key, value):
    cfg = _trained(tmp_path)
    setattr(getattr(cfg, section), key, value)
    with pytest.raises(ResumeError, match=rf"{section}\.{key} \S+ -> {value}"):
        Trainer(cfg, _model(), loader_factory()).train(resume=True)


def test_resume_warns_about_a_changed_budget_and_world_size(tmp_path, capsys):
    cfg = _trained(tmp_path)
    state = load_checkpoint(tmp_path / "last.pt")
    state["world_size"], state["rng"] = 2, state["rng"] * 2  # as if saved by a 2-process run
    save_checkpoint(tmp_path / "last.pt", state)
    cfg.train.max_iters = 6
    capsys.readouterr()
    trainer = Trainer(cfg, _model(), loader_factory())
    trainer.train(resume=True)
    out = capsys.readouterr().out
    assert "train.max_iters 4 -> 6" in out and "world size 2 -> 1" in out and trainer.iteration == 6

import pytest
import torch
from torch import nn

from detseg.config.schema import SolverConfig
from detseg.engine.optim import (
    LrSchedule,
    build_lr_lambda,
    build_optimizer,
    build_scheduler,
    iters_in_budget,
    param_groups,
    refit_scheduler,
)


def _solver(**kw) -> SolverConfig:
    return SolverConfig(**{"lr": 0.1, "warmup_iters": 10, "warmup_factor": 0.001, **kw})


def _lrs(solver: SolverConfig, max_iters: int, n: int) -> list[float]:
    """lr used at iterations 0..n-1, read from a real optimizer + LambdaLR."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=solver.lr)
    sched = build_scheduler(opt, solver, max_iters)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_linear_warmup_values():
    lrs = _lrs(_solver(), max_iters=100, n=12)
    assert lrs[0] == pytest.approx(0.1 * 0.001)
    assert lrs[5] == pytest.approx(0.1 * (0.001 * 0.5 + 0.5))  # 0.05005
    assert lrs[9] == pytest.approx(0.1 * (0.001 * 0.1 + 0.9))
    assert lrs[10] == pytest.approx(0.1) and lrs[11] == pytest.approx(0.1)


def test_step_schedule_values():
    lrs = _lrs(_solver(steps=[20, 30], gamma=0.1), max_iters=40, n=40)
    assert lrs[19] == pytest.approx(0.1)
    assert lrs[20] == pytest.approx(0.01)
    assert lrs[29] == pytest.approx(0.01)
    assert lrs[30] == pytest.approx(0.001)


def test_cosine_schedule_values():
    fn = build_lr_lambda(_solver(schedule="cosine", warmup_iters=0, min_lr_factor=0.1), max_iters=100)
    assert fn(0) == pytest.approx(1.0)
    assert fn(50) == pytest.approx(0.1 + 0.9 * 0.5)
    assert fn(100) == pytest.approx(0.1)
    assert fn(150) == pytest.approx(0.1)  # past the end it stays at the floor


def test_cosine_starts_after_warmup():
    fn = build_lr_lambda(_solver(schedule="cosine", warmup_iters=10), max_iters=110)
    assert fn(10) == pytest.approx(1.0)
    assert fn(60) == pytest.approx(0.5)
    assert fn(110) == pytest.approx(0.0)


def test_fitted_schedule_scales_steps_and_clamps_warmup():
    solver = _solver(steps=[600, 800], warmup_iters=100)
    fitted = build_lr_lambda(solver, max_iters=500, base_max_iters=1000)
    assert fitted.steps == [300, 400]
    assert fitted.warmup_iters == 50  # 10% of 500
    assert fitted(299) == pytest.approx(1.0) and fitted(300) == pytest.approx(0.1)
    unfitted = build_lr_lambda(solver, max_iters=1000, base_max_iters=1000)
    assert unfitted.steps == [600, 800] and unfitted.warmup_iters == 100


def test_refit_scheduler_applies_immediately_and_survives_state_dict():
    solver = _solver(steps=[600], warmup_iters=0)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = build_scheduler(opt, solver, 1000)
    for _ in range(40):
        opt.step()
        sched.step()
    refit_scheduler(sched, solver, max_iters=50, base_max_iters=1000)  # step moves to 30
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    state = sched.state_dict()
    assert state["lr_lambdas"][0]["max_iters"] == 50 and state["lr_lambdas"][0]["steps"] == [30]
    fresh = build_scheduler(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), solver, 1000)
    fresh.load_state_dict(state)
    assert isinstance(fresh.lr_lambdas[0], LrSchedule) and fresh.lr_lambdas[0].steps == [30]


def test_iters_in_budget():
    # 0.5 s/it, 12.5 s spent by 25 iterations, 60 s budget -> 25 + 95
    assert iters_in_budget(0.5, 12.5, 60.0, 25, 1000) == 120
    assert iters_in_budget(0.001, 12.5, 60.0, 25, 1000) == 1000  # never above train.max_iters
    assert iters_in_budget(0.5, 70.0, 60.0, 25, 1000) == 25  # budget already spent


def test_unknown_names_rejected():
    with pytest.raises(ValueError, match="schedule"):
        build_lr_lambda(_solver(schedule="poly"), 10)
    with pytest.raises(ValueError, match="optimizer"):
        build_optimizer(nn.Linear(2, 2), _solver(optimizer="lion"))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_no_weight_decay_on_bias_and_norm_params():
    net = _Net()
    groups = param_groups(net, weight_decay=1e-4)
    names = {id(p): n for n, p in net.named_parameters()}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    plain = {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed == {"conv.weight", "fc.weight"}
    assert plain == {"conv.bias", "bn.weight", "bn.bias", "gn.weight", "gn.bias", "ln.weight", "ln.bias", "fc.bias"}


def test_build_optimizer_kinds():
    sgd = build_optimizer(_Net(), _solver(nesterov=True, momentum=0.9, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["nesterov"]
    assert [g["weight_decay"] for g in sgd.param_groups] == [1e-4, 0.0]
    adamw = build_optimizer(_Net(), _solver(optimizer="adamw", weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.05, 0.0]
    n_params = sum(len(g["params"]) for g in adamw.param_groups)
    assert n_params == 10  # the frozen layer's weight and bias are left out

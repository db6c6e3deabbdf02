"""Issue 7 item 8 with real data: exact resume through random augmentation and 0 or 2 DataLoader workers.

The engine tests prove exact resume on a dataset without randomness. Here every sample goes
through multi-scale resize, flip and colour jitter; a straight run of 2k iterations and a run
preempted at k then resumed must still agree bit for bit (parameters, optimizer state, learning
rates, logged losses), inside the warm-up and after a step milestone.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detseg.config import load_config
from detseg.data.build import build_dataset
from detseg.engine.trainer import Trainer
from detseg.app.pipeline import train_loader_factory
from detseg.structures import Batch
from tests.reliability.conftest import CONFIG, data_overrides


class PooledDummy(nn.Module):
    """Reads pooled pixels and box geometry, so any change in augmentation changes the loss."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(48, 16), nn.ReLU(), nn.Dropout(0.2))
        self.reg = nn.Linear(16, 4)

    def forward(self, batch: Batch, mode: str = "loss"):
        x = F.adaptive_avg_pool2d(batch.images.float() / 255, 4).flatten(1)
        sizes = torch.tensor([[w, h, w, h] for h, w in batch.image_sizes], dtype=torch.float32)
        target = torch.stack([b.mean(0) if len(b) else torch.zeros(4) for b in batch.boxes]) / sizes
        return {"loss_dummy_reg": F.smooth_l1_loss(self.reg(self.body(x)), target)}


class Preempted(Exception):
    pass


def _preempting(factory, after: int):
    def make(start_index: int):
        batches = iter(factory(start_index))

        def stream():
            for served, batch in enumerate(batches):
                if served == after:
                    raise Preempted
                yield batch
        return stream()
    return make


def _setup(tmp_path, shapes_paths, workers: int, k: int, solver: list[str]):
    overrides = [*data_overrides(shapes_paths), f"data.num_workers={workers}", "data.batch_size=2",
                 "data.min_size_train=[96,112,128]", "data.max_size_train=160", "data.color_jitter=0.3",
                 "train.max_minutes=null", f"train.max_iters={2 * k}", f"train.checkpoint_period={k}",
                 "train.log_period=1", "train.device=cpu", f"train.output_dir={tmp_path}", *solver]
    cfg = load_config(CONFIG, overrides)
    return cfg, train_loader_factory(cfg, build_dataset(cfg.data, "train", train=True))


def _train(tmp_path, shapes_paths, workers, k, solver, preempt: bool = False) -> Trainer:
    cfg, factory = _setup(tmp_path, shapes_paths, workers, k, solver)
    if preempt:
        with pytest.raises(Preempted):
            Trainer(cfg, PooledDummy(), _preempting(factory, k)).train()
        cfg, factory = _setup(tmp_path, shapes_paths, workers, k, solver)
    trainer = Trainer(cfg, PooledDummy(), factory)
    trainer.train(resume=preempt)
    return trainer


def _losses(out_dir) -> list[tuple[int, float, float]]:
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["iter"], r["loss"], r["lr"]) for r in records if r["type"] == "train"]


def _assert_identical(a: Trainer, b: Trainer) -> None:
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    for key, fields in sa["state"].items():
        for field, value in fields.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(sb["state"][key][field])), (key, field)
    assert [g["lr"] for g in sa["param_groups"]] == [g["lr"] for g in sb["param_groups"]]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("k, solver", [
    (4, ["solver.warmup_iters=6", "solver.schedule=step", "solver.steps=[5]"]),  # resume inside warm-up
    (5, ["solver.warmup_iters=2", "solver.schedule=step", "solver.steps=[3]"]),  # resume after the milestone
])
def test_resume_with_augmentation_and_workers_is_exact(tmp_path, shapes_paths, workers, k, solver):
    straight = _train(tmp_path / "straight", shapes_paths, workers, k, solver)
    resumed = _train(tmp_path / "resumed", shapes_paths, workers, k, solver, preempt=True)
    assert resumed.iteration == straight.iteration == 2 * k
    _assert_identical(straight, resumed)
    logged = _losses(tmp_path / "straight")
    assert [it for it, _, _ in logged] == list(range(1, 2 * k + 1))
    assert _losses(tmp_path / "resumed") == logged


def test_augmentation_does_not_depend_on_the_worker_count(tmp_path, shapes_paths):
    solver = ["solver.warmup_iters=2"]
    runs = [_train(tmp_path / f"w{workers}", shapes_paths, workers, 3, solver) for workers in (0, 2)]
    _assert_identical(*runs)
    assert _losses(tmp_path / "w0") == _losses(tmp_path / "w2")

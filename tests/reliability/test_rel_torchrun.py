"""Issue 7 items 16 and 17 (second half): distributed training on the CPU with gloo.

- Two ranks with a per-rank batch of b follow the same trajectory as one process with a batch of 2b.
- ``torchrun --nproc-per-node 2 --max-restarts 1 tools/train.py ... --resume``: rank 1 is killed
  mid-run, torchrun restarts the group, training resumes from rank 0's last checkpoint and finishes,
  and the run folder holds rank 0's files only.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from tests.reliability.conftest import CONFIG, ROOT, TINY, data_overrides
from torch import nn

from detseg.utils.checkpoint import load_checkpoint
from tests.engine.engine_helpers import loader_factory, make_cfg

STEPS = 6


class LinearDetector(nn.Module):
    """No BatchNorm, dropout or noise: a per-sample mean loss whose gradient DDP averages exactly."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.cls = nn.Linear(12, 2)
        self.reg = nn.Linear(12, 4)

    def forward(self, batch, mode: str = "loss"):
        x = batch.images.flatten(1).float() / 255
        labels = torch.cat(batch.labels)
        boxes = torch.cat(batch.boxes)
        return {"loss_lin_cls": F.cross_entropy(self.cls(x), labels),
                "loss_lin_reg": F.smooth_l1_loss(self.reg(x), boxes)}


def _cfg(out_dir):
    solver = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "warmup_iters": 2, "steps": [4]}
    # fp32 on every CPU: the spawned ranks read the CPU's flags themselves (tests/conftest.py patches only
    # this process), and rtol 1e-5 is an fp32 tolerance
    return make_cfg(out_dir, max_iters=STEPS, solver=solver, train={"checkpoint_period": 3, "amp": False})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from detseg.engine.trainer import Trainer
    from detseg.utils.distributed import init_distributed

    assert init_distributed()
    try:
        model = LinearDetector()
        Trainer(_cfg(out_dir), model, loader_factory(batch_size=4, rank=rank, world_size=2)).train()
        torch.save(model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # tear down together (a lone teardown can abort the peer)
    finally:
        dist.destroy_process_group()


def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    from detseg.engine.trainer import Trainer

    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    single = LinearDetector()
    Trainer(_cfg(tmp_path / "single"), single, loader_factory(batch_size=4)).train()
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    moved = 0.0
    for name, value in single.state_dict().items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-5, atol=1e-6)
        moved += float((value - LinearDetector().state_dict()[name]).abs().sum())
    assert moved > 1e-3  # the runs trained: equality is not two untouched initialisations
    ddp_log = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    single_log = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in ddp_log] == [r["iter"] for r in single_log]
    for a, b in zip(ddp_log, single_log):  # logged losses are the mean over ranks = the global batch mean
        assert a["lr"] == b["lr"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5)


# ---------------------------------------------------------------- torchrun, a dead rank, one restart


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _rank_of(pid: int) -> int | None:
    try:
        env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [item[5:] for item in env if item.startswith(b"RANK=")]
    return int(ranks[0]) if ranks else None


def _kill_rank_after_first_checkpoint(launcher: subprocess.Popen, out: Path, rank: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and launcher.poll() is None:
        if (out / "last.pt").exists():
            for pid in _children(launcher.pid):
                if _rank_of(pid) == rank:
                    os.kill(pid, signal.SIGKILL)
                    return pid
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared, or the launcher exited before the kill")


@pytest.mark.slow
def test_torchrun_restart_resumes_from_the_last_checkpoint(tmp_path, shapes_paths):
    out, log = tmp_path / "run", tmp_path / "torchrun.log"
    overrides = [*TINY, *data_overrides(shapes_paths), "train.checkpoint_period=2", "train.max_iters=12",
                 "train.log_period=2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "1", "--monitor-interval", "0.2", "tools/train.py", CONFIG,
           "--output-dir", str(out), "--resume", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as sink:
        launcher = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            _kill_rank_after_first_checkpoint(launcher, out, rank=1, timeout=300)
            launcher.wait(timeout=400)
        finally:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait()
    text = log.read_text()
    assert launcher.returncode == 0, text[-3000:]
    resumed = re.findall(rf"resumed from {re.escape(str(out / 'last.pt'))} at iteration (\d+)/12", text)
    assert len(resumed) == 1 and int(resumed[0]) >= 2, text[-3000:]  # the restart, not the first start
    final = load_checkpoint(out / "last.pt")
    assert final["iteration"] == 12 and len(final["rng"]) == 2  # both ranks' RNG states, saved by rank 0
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.yaml", "confusion_matrix.json", "labels.json",
                                                     "last.pt", "metrics.json", "metrics.jsonl", "plots",
                                                     "pr_curves.json", "tb"]
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["iter"] == 12
    # the final evaluation ran sharded over both ranks and gathered: it equals a single-process eval
    ddp_eval = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ddp_eval = [r for r in ddp_eval if r["type"] == "eval"][-1]
    assert set(ddp_eval["val_loss"]) >= {"loss", "loss_rpn_cls", "loss_roi_cls"}  # averaged over both ranks
    subprocess.run([sys.executable, "tools/eval.py", CONFIG, "--checkpoint", str(out / "last.pt"),
                    "--output-dir", str(tmp_path / "eval"), *overrides], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    single = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert ddp_eval["bbox"] == pytest.approx(single["bbox"])

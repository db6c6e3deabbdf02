import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from engine_helpers import loader_factory, make_cfg, make_model

from detseg.engine.trainer import Trainer
from detseg.utils.checkpoint import load_checkpoint
from detseg.utils.distributed import (
    all_reduce_mean,
    barrier,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
    select_device,
)


def test_single_process_helpers(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_distributed() is False
    assert (get_rank(), get_world_size(), is_main_process()) == (0, 1, True)
    barrier()
    values = {"loss": torch.tensor(2.0)}
    assert all_reduce_mean(values) is values


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    with pytest.raises(ValueError, match="train.device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            select_device("cuda")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    assert init_distributed()
    try:
        cfg = make_cfg(out_dir, max_iters=6, train={"checkpoint_period": 3})
        model = make_model(0)
        Trainer(cfg, model, loader_factory(rank=rank, world_size=world)).train()
        reduced = all_reduce_mean({"x": torch.tensor(float(rank))})["x"].item()
        params = {name: p.detach() for name, p in model.named_parameters()}
        torch.save({"params": params, "reduced": reduced}, os.path.join(out_dir, f"rank{rank}.pt"))
        # Tear down together: a rank destroying its gloo group while the peer is still
        # connected occasionally aborts ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_training(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert r0["reduced"] == r1["reduced"] == 0.5
    for name, value in r0["params"].items():
        assert torch.equal(value, r1["params"][name]), name  # DDP kept the replicas identical
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["iteration"] == 6 and len(saved["rng"]) == 2  # one RNG state per rank
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iter"] for line in lines] == [2, 4, 6]  # rank 0 writes alone

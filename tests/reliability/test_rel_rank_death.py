"""Issue 7 item 17 (first half): when one rank dies mid-training the other exits with an error
in bounded time instead of hanging in a collective (gloo, CPU)."""
from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from tests.engine.engine_helpers import DummyDetector, loader_factory, make_cfg

DIE_AT_FORWARD = 3
BOUND_S = 60.0  # far below gloo's 30-minute default collective timeout


class DyingDetector(DummyDetector):
    def __init__(self, rank: int):
        torch.manual_seed(0)
        super().__init__()
        self.rank = rank

    def forward(self, batch, mode="loss"):
        if self.rank == 1 and self.forwards + 1 == DIE_AT_FORWARD:
            os._exit(17)  # like an OOM kill: no cleanup, no exception on this rank
        return super().forward(batch, mode)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from detseg.engine.trainer import Trainer
    from detseg.utils.distributed import init_distributed

    init_distributed()
    cfg = make_cfg(out_dir, max_iters=50)
    Trainer(cfg, DyingDetector(rank), loader_factory(rank=rank, world_size=2)).train()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_surviving_rank_errors_out_when_a_peer_dies(tmp_path):
    ctx, port = mp.get_context("spawn"), _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, str(tmp_path))) for rank in range(2)]
    for proc in procs:
        proc.start()
    procs[1].join(timeout=120)
    died_at = time.monotonic()
    procs[0].join(timeout=BOUND_S)
    still_running = procs[0].is_alive()
    for proc in procs:  # never leave a hung process behind, whatever happened
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert procs[1].exitcode == 17
    assert not still_running, f"rank 0 still blocked {BOUND_S} s after rank 1 died"
    assert procs[0].exitcode != 0 and time.monotonic() - died_at < BOUND_S

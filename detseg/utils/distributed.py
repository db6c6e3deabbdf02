"""Thin torch.distributed helpers that also work, as no-ops, in a single process."""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def init_distributed() -> bool:
    """Join the process group described by torchrun's environment variables.

    Returns True when running distributed. NCCL is the only fast backend on GPUs;
    gloo is the CPU one (and what the tests use).
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(get_local_rank())  # before init so NCCL binds the right GPU
    store, rank, world_size = next(dist.rendezvous("env://"))
    # After `torchrun --max-restarts` the agent's store still holds the dead attempt's
    # addresses; a rank that reads one before its peer overwrites it fails to connect.
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.PrefixStore(f"detseg/attempt_{attempt}", store)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", store=store, rank=rank, world_size=world_size)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if get_world_size() > 1:
        dist.barrier()


def all_reduce_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Average scalars over ranks (for logging): one collective for the whole dict."""
    if get_world_size() == 1 or not values:
        return values
    keys = sorted(values)  # every rank must pack in the same order
    packed = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(packed)
    packed /= get_world_size()
    return dict(zip(keys, packed.unbind()))


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s value on every rank (decisions such as 'stop now' must agree)."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank rank ``src``'s buffers. DDP syncs them only at the start of a forward, so
    after the last training step each rank holds BatchNorm statistics of its own batch."""
    if get_world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=src)


def all_gather_object(obj: Any) -> list[Any]:
    if get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    """True only if `flag` is True on every rank (a tensor collective: cheap every step)."""
    if get_world_size() == 1:
        return flag
    tensor = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return bool(tensor.item())


def any_rank_true(flag: bool, device: torch.device) -> bool:
    return not all_ranks_true(not flag, device)


def select_device(name: str = "auto") -> torch.device:
    """"auto" picks CUDA when present; each process of a multi-GPU run gets its local GPU."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown train.device '{name}'; expected 'auto', 'cpu' or 'cuda'")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is available; use train.device=cpu")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", get_local_rank() if get_world_size() > 1 else torch.cuda.current_device())

"""Seeding and saving/restoring every random number generator a training step may touch.

States are converted to tensors, lists and ints so a checkpoint holding them loads
with `torch.load(weights_only=True)` (numpy arrays and python tuples-of-tuples from
`random.getstate()` would need unsafe unpickling).
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # numpy only takes 32-bit seeds
    torch.manual_seed(seed)  # also seeds every CUDA device


def get_rng_state() -> dict[str, Any]:
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    # Only the current device: each process trains on one GPU, and a CPU run on a GPU
    # machine should not initialise CUDA just to save its (unused) state.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"].cpu())
    # A checkpoint from a CPU run has no CUDA state: the seed stays in effect.
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu())


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (e.g. evaluation) without advancing the training RNG streams, so a run
    that evaluates and one resumed from a checkpoint written at the same step stay identical."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)

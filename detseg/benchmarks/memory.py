"""Peak memory of training each model, detseg against torchvision, each side in a fresh process so
that one's peak cannot hide in the other's (peak RSS; CUDA's max_memory_allocated on a GPU): ``python -m detseg.benchmarks.memory MODEL SIDE ...`` prints
one JSON line with the process's peak RSS (and CUDA's peak allocation where it trained on a GPU)."""
from __future__ import annotations

import argparse
import json
import resource
import sys

from detseg.benchmarks.fresh_process import run_json


def peak_rss_mb() -> float:
    """This process's peak resident set so far.

    Linux carries ru_maxrss over fork and exec, so a probe started by a big benchmark process would
    report its parent's peak; VmHWM belongs to the address space exec made, so it is the probe's own.
    Elsewhere ru_maxrss (KiB on Linux, bytes on macOS) is what there is."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def train_and_report(name: str, side: str, iters: int, size: int, batch_size: int, device: str) -> dict:
    import torch

    from detseg.benchmarks.compare import contender

    step = contender(name, side, batch_size, size, device).train_step
    for _ in range(iters):
        step()
    report = {"model": name, "side": side, "iters": iters, "peak_rss_mb": peak_rss_mb()}
    if device.startswith("cuda"):
        report["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return report


def measure_in_subprocess(args: list[str], timeout: float = 900) -> dict:
    """Run this module's command line in a new interpreter; its last stdout line is the report."""
    return run_json("detseg.benchmarks.memory", args, timeout)


def compare_memory(models: list[str], iters: int, sizes: dict[str, int], batch_size: int, device: str) -> dict:
    out = {}
    for name in models:
        row = {"size": sizes[name], "batch_size": batch_size, "iters": iters}
        for side in ("detseg", "torchvision"):
            row[side] = measure_in_subprocess([name, side, "--iters", str(iters), "--size", str(sizes[name]),
                                               "--batch-size", str(batch_size), "--device", device])
        row["rss_ratio"] = row["detseg"]["peak_rss_mb"] / row["torchvision"]["peak_rss_mb"]
        if "cuda_max_allocated_mb" in row["detseg"]:
            row["cuda_ratio"] = row["detseg"]["cuda_max_allocated_mb"] / row["torchvision"]["cuda_max_allocated_mb"]
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("side", choices=("detseg", "torchvision"))
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(json.dumps(train_and_report(args.model, args.side, args.iters, args.size, args.batch_size, args.device)))


if __name__ == "__main__":
    main()

"""All six measurements of ``tools/benchmark.py --compare-torchvision`` in one run, full or --quick."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from detseg.benchmarks import compare, data_wait, eval_speed, gpu, memory, overhead
from detseg.benchmarks.machine import machine_info
from detseg.benchmarks.report import all_checks


def run_suite(rounds: int = 5, quick: bool = False, say: Callable[[str], None] = print,
              shapes: str | Path = data_wait.SHAPES, compiled: bool = False) -> dict:
    """``shapes``: the shapes dataset the data-wait trainings read (made with tools/make_dataset.py if missing);
    ``compiled``: also time detseg's inference with test.compile."""
    results = {"machine": machine_info(), "quick": quick, "rounds": rounds, "compiled": compiled}
    say("1/6 detseg vs torchvision speed" + (" (and detseg with test.compile)" if compiled else ""))
    results["compare"] = compare.compare_all(quick, rounds, compiled)
    say("2/6 overhead over the backbone")
    sizes = dict(size=128, rounds=1, calls=1) if quick else dict(rounds=rounds)
    results["overhead"] = overhead.measure_overhead(**sizes)
    if results["overhead"]["precision"] != "float32":  # the same goal at equal precision: RoIAlign stays fp32
        results["overhead_fp32"] = overhead.measure_overhead(**sizes, fp32=True)
    say("3/6 COCO evaluation backends (a fresh process)")
    results["eval"] = eval_speed.compare_in_fresh_process(40 if quick else 500)
    say("4/6 data wait in training")
    results["data_wait"] = data_wait.data_wait_all(*((2, 1) if quick else (30, 5)), data_root=shapes)
    say("5/6 peak memory (fresh processes)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if quick:
        results["memory"] = memory.compare_memory(["faster_rcnn_r50_fpn"], 1, {"faster_rcnn_r50_fpn": 128}, 1, device)
    else:
        sizes = {name: size for name, (_, size) in compare.MODELS.items()}
        results["memory"] = memory.compare_memory(list(compare.MODELS), 3, sizes, 2, device)
    say("6/6 GPU figures")
    results["gpu"] = gpu.gpu_figures(rounds=1 if quick else rounds) if torch.cuda.is_available() else None
    results["checks"] = all_checks(results)
    return results

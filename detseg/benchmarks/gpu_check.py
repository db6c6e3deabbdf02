"""The GPU check: everything detseg claims about CUDA, measured in one run of at most ~8 minutes on a
machine without network (tools/gpu_check.sh installs the wheels it lacks first; docs/gpu.md).

Steps, each in its own process with its own time limit (so that a hang, a crash or an out-of-memory in one
is recorded and the next still runs), all cut to what is left of the whole budget:
1. the tests marked ``cuda``; 2. Faster and Mask R-CNN R50-FPN at 800x1333 under bf16 autocast beside
torchvision (detseg/benchmarks/gpu.py); 3. the shapes dataset; 4. a 2-minute shapes training and its AP.
``dry_run`` shrinks every step to seconds on the CPU (the suite's test of this module).
"""
from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from detseg.benchmarks.machine import machine_info

ROOT = Path(__file__).resolve().parents[2]
SHAPES_CONFIG = "configs/faster_rcnn/shapes.yaml"
BENCHMARKED = "faster_rcnn_r50_fpn"  # the model the H100 targets are set for
# The goals on one H100 for Faster R-CNN R50-FPN at 800x1333 with bf16 autocast (issue 21)
TARGETS = {"train_ips": 40.0, "infer_ips": 60.0, "train_ratio": 1.3, "infer_ratio": 1.3}
# What the image of a GPU machine may lack (installed from the wheels folder; `make gpu-wheels`)
PACKAGES = ("pycocotools", "faster-coco-eval", "albumentations", "ImageHash")


@dataclass
class Step:
    """One command of the check. ``read`` turns the output folder into the figures the report keeps;
    ``writes``: the file or folder under it that the step makes (a previous check's is removed first, so
    that a step which fails early cannot leave an old run's figures to be read)."""
    name: str
    command: list[str]
    limit_s: float
    read: Callable[[Path], dict] = lambda out: {}
    writes: str | None = None


def environment(dry_run: bool) -> dict:
    """The machine, the versions, and what this install can and cannot do."""
    info = machine_info()
    import torchvision

    info["torchvision"] = torchvision.__version__
    info["python"] = sys.version.split()[0]
    info["cuda"] = torch.version.cuda
    info["dry_run"] = dry_run
    info["packages"] = {name: _version(name) for name in PACKAGES}
    info["selective_search"] = selective_search_status()
    return info


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def selective_search_status() -> str:
    """The R-CNN family (rcnn, sppnet, fast_rcnn) reads selective search boxes: OpenCV's contrib build."""
    from detseg.data.selective_search import SelectiveSearchUnavailable, _ximgproc

    try:
        _ximgproc()
    except SelectiveSearchUnavailable as exc:
        return f"unavailable: {exc}"
    return "available"


def cuda_test_files(root: Path = ROOT) -> list[str]:
    """The test files that hold a ``cuda``-marked test: collecting only them needs none of the optional
    packages other tests import."""
    files = sorted(str(p.relative_to(root)) for p in (root / "tests").rglob("test_*.py")
                   if "pytest.mark.cuda" in p.read_text(encoding="utf-8"))
    if not files:  # pytest given no file would collect the whole suite
        raise FileNotFoundError(f"no test file under {root / 'tests'} marks a test pytest.mark.cuda")
    return files


def read_junit(path: Path) -> dict:
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed_tests"] = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                              if case.find("failure") is not None or case.find("error") is not None]
    return counts


def read_training(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    trained = [s for s in steps if s.get("type") == "train"]
    return {"AP": metrics["bbox"]["AP"], "AP50": metrics["bbox"]["AP50"],
            "iterations": trained[-1]["iter"] if trained else 0}


def steps(out: Path, dry_run: bool, batch_size: int = 8) -> list[Step]:
    py = sys.executable
    shapes, run = out / "shapes", out / "shapes_run"
    data = [f"data.train.ann_file={shapes}/annotations/instances_train.json", f"data.train.img_dir={shapes}/train",
            f"data.val.ann_file={shapes}/annotations/instances_val.json", f"data.val.img_dir={shapes}/val"]
    if dry_run:
        bench = ["--device", "cpu", "--rounds", "1", "--batch-size", "1", "--height", "64", "--width", "96", "--quick"]
        make = ["--num-train", "8", "--num-val", "4", "--workers", "1"]
        train = ["train.device=cpu", "train.max_minutes=null", "train.max_iters=2", "train.log_period=1",
                 "data.num_workers=0"]
    else:
        bench = ["--device", "cuda", "--batch-size", str(batch_size)]
        make = []
        # the shapes model is small: one loader process would leave the GPU waiting
        train = ["train.device=cuda", "train.max_minutes=2", "data.num_workers=8"]
    return [
        Step("cuda_tests", [py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                            f"--junitxml={out / 'cuda_tests.xml'}", *cuda_test_files()],
             90, lambda o: read_junit(o / "cuda_tests.xml"), "cuda_tests.xml"),
        Step("benchmark", [py, "-m", "detseg.benchmarks.gpu", *bench, "--output", str(out / "benchmark.json")],
             170, lambda o: json.loads((o / "benchmark.json").read_text()), "benchmark.json"),
        Step("shapes_data", [py, "tools/make_dataset.py", "shapes", "--output-dir", str(shapes), *make], 40,
             writes=shapes.name),
        Step("shapes_training", [py, "tools/train.py", SHAPES_CONFIG, "--output-dir", str(run), *data, *train], 170,
             lambda o: read_training(run), run.name),
    ]


def run_step(step: Step, out: Path, limit_s: float) -> dict:
    """Run ``step`` for at most ``limit_s`` seconds; its output goes to out/logs/<name>.log."""
    log = out / "logs" / f"{step.name}.log"
    if step.writes:
        _remove(out / step.writes)
    record = {"status": "ok", "limit_s": round(limit_s), "log": str(log.relative_to(out))}
    start = time.perf_counter()
    with open(log, "w") as f:
        try:
            done = subprocess.run(step.command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=limit_s)
            record["returncode"] = done.returncode
            if done.returncode != 0:
                record["status"] = "failed"
        except subprocess.TimeoutExpired:
            record["status"] = "timeout"
    record["seconds"] = time.perf_counter() - start
    try:  # a step stopped at its limit may have written part of its figures (the benchmark, model by model)
        record.update(step.read(out))
    except (OSError, KeyError, ValueError, ET.ParseError) as exc:
        record["status"] = "failed" if record["status"] == "ok" else record["status"]
        record["error"] = f"no figures: {exc}"
    if record["status"] != "ok":
        record["log_tail"] = log.read_text(errors="replace")[-1500:]
    return record


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def targets(benchmark: dict) -> dict:
    """Faster R-CNN's figures beside the H100 goals: value, goal, value / goal and PASS."""
    row = benchmark.get("models", {}).get(BENCHMARKED)
    if not row:
        return {}
    values = {"train_ips": row["detseg"]["train_ips"], "infer_ips": row["detseg"]["infer_ips"],
              "train_ratio": row["train_ratio"], "infer_ratio": row["infer_ratio"]}
    return {k: {"value": v, "goal": TARGETS[k], "of_goal": v / TARGETS[k], "pass": v >= TARGETS[k]}
            for k, v in values.items()}


def run_check(out: Path, dry_run: bool = False, budget_s: float = 480, batch_size: int = 8,
              say: Callable[[str], None] = print) -> dict:
    """Every step in order within ``budget_s`` seconds; returns (and writes to out/gpu_check.json) the report."""
    if not dry_run and not torch.cuda.is_available():
        raise ValueError("the GPU check needs a CUDA device; --dry-run runs its steps, shrunk, on the CPU")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = {"environment": environment(dry_run), "budget_s": budget_s, "steps": {}}
    for step in steps(out, dry_run, batch_size):
        left = budget_s - (time.perf_counter() - start)
        if left < 5:
            report["steps"][step.name] = {"status": "skipped", "error": "no time left of the budget"}
            continue
        say(f"{step.name}: at most {min(step.limit_s, left):.0f} s")
        report["steps"][step.name] = record = run_step(step, out, min(step.limit_s, left))
        say(f"{step.name}: {record['status']} in {record['seconds']:.0f} s")
    report["targets"] = targets(report["steps"].get("benchmark", {}))
    report["seconds"] = time.perf_counter() - start
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(format_table(report) + "\n")
    return report


def format_table(report: dict) -> str:
    """The benchmark as a markdown table for docs/gpu.md, headed by the card, versions and CPU."""
    env = report["environment"]
    lines = [f"{env['device']}, torch {env['torch']}, torchvision {env['torchvision']}, CUDA {env['cuda']}, "
             f"CPU {env['cpu']} ({env['cpu_count']} cores), {env['date']}", ""]
    bench = report["steps"].get("benchmark", {})
    if "models" in bench:
        h, w = bench["size"]
        lines += [f"R50-FPN at {h}x{w}, bf16 autocast and channels_last on both sides; training batch "
                  f"{bench['batch_size']}, inference batch 1; peak = CUDA max allocated, each side alone", "",
                  "| model | side | train img/s | infer img/s | train peak MiB | infer peak MiB |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for name, row in bench["models"].items():
            for side in ("detseg", "torchvision"):
                r = row[side]
                lines.append(f"| {name} | {side} | {r['train_ips']:.1f} | {r['infer_ips']:.1f} | "
                             f"{_mb(r, 'train_peak_mb')} | {_mb(r, 'infer_peak_mb')} |")
            lines.append(f"| {name} | ratio | {row['train_ratio']:.2f}x | {row['infer_ratio']:.2f}x | "
                         f"{_ratio(row.get('train_memory_ratio'))} | |")
    for key, t in report.get("targets", {}).items():
        lines.append(f"- {BENCHMARKED} {key}: {t['value']:.2f} (goal >= {t['goal']:g} on one H100: "
                     f"{'PASS' if t['pass'] else 'MISS'})")
    training = report["steps"].get("shapes_training", {})
    if "AP" in training:
        lines.append(f"- shapes training ({SHAPES_CONFIG}, {training['iterations']} iterations): "
                     f"bbox AP {training['AP']:.1f}, AP50 {training['AP50']:.1f}")
    tests = report["steps"].get("cuda_tests", {})
    if "tests" in tests:
        lines.append(f"- CUDA tests: {tests['passed']} passed, {tests['failures'] + tests['errors']} failed, "
                     f"{tests['skipped']} skipped")
    lines.append("- steps: " + ", ".join(f"{name} {s['status']} ({s.get('seconds', 0):.0f} s)"
                                         for name, s in report["steps"].items()))
    return "\n".join(lines)


def _mb(row: dict, key: str) -> str:
    return f"{row[key]:.0f}" if key in row else "n/a"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"

"""tools/benchmark.py --compare-torchvision and its library, detseg.benchmarks (no timing is asserted)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detseg.benchmarks.eval_speed import compare_backends, run_detseg, run_pycocotools, synthetic_coco
from detseg.benchmarks.memory import peak_rss_mb
from detseg.benchmarks.overhead import PARTS, breakdown
from detseg.benchmarks.report import all_checks, check
from tests.benchmarks.report_numbers import numbers_in

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def coco_set():
    return synthetic_coco(num_images=60)


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_detseg_evaluation_gives_pycocotools_stats_on_the_synthetic_set(coco_set, iou_type, backend, workers):
    if backend == "faster_coco_eval":
        pytest.importorskip("faster_coco_eval")
    dataset, results = coco_set
    slow, _ = run_pycocotools(dataset, results, iou_type)
    fast, _ = run_detseg(dataset, results, iou_type, backend, workers)
    assert slow.shape == (12,)
    np.testing.assert_array_equal(fast, slow)
    # a parity worth having: a set that is neither perfect nor hopeless, with all object sizes
    assert 0.1 < slow[0] < 0.9 and all(0 < s < 1 for s in slow[3:6])


def test_synthetic_coco_set_is_deterministic_and_realistically_sized(coco_set):
    dataset, results = coco_set
    again = synthetic_coco(num_images=60)
    assert json.dumps(again, sort_keys=True) == json.dumps(coco_set, sort_keys=True)
    assert len(dataset["images"]) == 60 and len(results) == 60 * 100
    assert 4 * 60 <= len(dataset["annotations"]) <= 10 * 60
    assert all(isinstance(a["segmentation"], list) for a in dataset["annotations"])  # polygons
    assert all(set(r["segmentation"]) == {"size", "counts"} for r in results)  # RLE


def test_compare_backends_reports_speedup_arithmetic():
    pytest.importorskip("faster_coco_eval")
    report = compare_backends(num_images=8, iou_types=("bbox",), repeats=2)
    r = report["bbox"]
    assert r["speedup"] == r["pycocotools_s"] / r["detseg_s"]
    assert r["max_stat_diff"] <= 1e-12 and report["detections"] == 800 and report["repeats"] == 2


def test_overhead_breakdown_parts_fit_in_the_total():
    import torch

    from detseg.benchmarks.throughput import synthetic_images, to_batch
    from detseg.config import load_config
    from detseg.models.build import build_model

    cfg = load_config(ROOT / "configs/faster_rcnn/shapes.yaml", ["model.backbone.width=0.25"])
    model = build_model(cfg.model, 3).eval()
    batch = to_batch(*synthetic_images(1, 96))
    hooks_before = len(model.backbone._forward_hooks)
    result = breakdown(model, batch, calls=2)
    parts = result["parts_ms"]
    assert set(parts) == {*PARTS, "other"}
    named = sum(v for k, v in parts.items() if k != "other")
    assert all(v > 0 for k, v in parts.items() if k != "other"), parts
    assert named <= result["total_ms"] and parts["other"] == pytest.approx(result["total_ms"] - named)
    # the hooks and wrappers are gone afterwards: the model is the one we were given
    assert len(model.backbone._forward_hooks) == hooks_before and "preprocess" not in vars(model)
    with torch.no_grad():
        assert isinstance(model(batch, mode="predict"), list)


def test_overhead_is_measured_again_in_fp32_where_the_default_is_bf16(monkeypatch):
    from detseg.benchmarks.overhead import measure_overhead
    from detseg.benchmarks.report import all_checks
    from detseg.engine import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    default = measure_overhead(size=96, rounds=1, calls=1)
    fp32 = measure_overhead(size=96, rounds=1, calls=1, fp32=True)
    assert (default["precision"], fp32["precision"]) == ("bfloat16", "float32")
    assert fp32["flop_ratio"] > 1 and default["flop_ratio"] > 1
    checks = {c["name"]: c for c in all_checks({"overhead": default, "overhead_fp32": fp32})}
    assert checks["inference / (backbone+neck x FLOP ratio), fp32"]["value"] == fp32["ratio_over_flops"]
    assert checks["inference / (backbone+neck x FLOP ratio)"]["value"] == default["ratio_over_flops"]


def test_counted_flops_are_the_convolutions_multiply_adds_twice():
    import torch

    from detseg.benchmarks.overhead import counted_flops

    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(1, 3, 16, 16)
    assert counted_flops(lambda: conv(x)) == 2 * 8 * 3 * 9 * 16 * 16


def test_probe_reports_its_own_peak_not_its_parents():
    big = np.ones(300 * 2**20 // 8)  # 300 MiB in this process, which a fork would carry as ru_maxrss
    code = "from detseg.benchmarks.memory import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout)
    assert 5 < child < 250  # a fresh interpreter that imported detseg.benchmarks.memory, not 300 MiB more
    assert peak_rss_mb() > big.nbytes / 2**20


def test_peak_rss_falls_back_to_getrusage_without_proc(monkeypatch):
    import resource

    from detseg.benchmarks import memory

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(memory, "open", no_proc, raising=False)
    expected = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    assert memory.peak_rss_mb() == pytest.approx(expected, rel=0.05) and expected > 5


def test_paired_ratio_is_the_median_of_each_rounds_own_ratio():
    from detseg.benchmarks.timing import interleaved_samples, paired_ratio

    # the host slows down 40% after the first rounds: each round's ratio stays 1.3, the medians' does not
    samples = {"torchvision": [1.3, 1.3, 1.82, 1.82, 1.82], "detseg": [1.0, 1.0, 1.4, 1.4, 1.4]}
    assert paired_ratio(samples, "torchvision", "detseg") == pytest.approx(1.3)
    assert paired_ratio({"a": [1.0, 2.0, 9.0], "b": [1.0, 1.0, 1.0]}, "a", "b") == 2.0
    calls = []
    timed = interleaved_samples({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, calls=1,
                                warmup=0)
    assert calls == ["a", "b", "b", "a", "a", "b"] and [len(v) for v in timed.values()] == [3, 3]


def test_check_marks_goals():
    assert check("x", 1.4, ">=", 1.3)["pass"] and not check("x", 1.2, ">=", 1.3)["pass"]
    assert not check("x", float("nan"), "<=", 1.0)["pass"]
    assert check("x", 0.05, "<", 0.1) == {"name": "x", "value": 0.05, "op": "<", "goal": 0.1, "pass": True}


def test_on_a_bf16_cpu_the_speed_rows_carry_equal_precision_controls(monkeypatch):
    from detseg.benchmarks import compare
    from detseg.benchmarks.report import _compare_lines
    from detseg.engine import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert compare.sides_for("faster_rcnn_r50_fpn") == compare.SIDES + compare.CONTROLS
    r = compare.compare_model("faster_rcnn_r50_fpn", batch_size=1, rounds=1, size=128, warmup=0)
    assert r["precision"] == "bfloat16"
    # ratios of one round's own times (rounds=1 here); the medians shown beside them
    assert r["train_ratio"] == r["torchvision"]["train_s"][0] / r["detseg"]["train_s"][0]
    assert r["equal_fp32"]["train_ratio"] == r["torchvision"]["train_s"][0] / r["detseg_fp32"]["train_s"][0]
    assert r["equal_amp"]["latency_ratio"] == r["detseg"]["latency_s"][0] / r["torchvision_amp"]["latency_s"][0]
    assert r["detseg"]["train_ips"] == 1 / r["detseg"]["train_s"][0]
    assert r["torchvision"]["latency_ms"] == r["torchvision"]["latency_s"][0] * 1000
    checks = {c["name"]: c for c in all_checks({"compare": {"faster_rcnn_r50_fpn": r}})}
    # each precision is a goal of its own: the default's, both fp32, both bf16
    assert checks["faster_rcnn_r50_fpn train fp32 both"]["value"] == r["equal_fp32"]["train_ratio"]
    assert checks["faster_rcnn_r50_fpn latency bfloat16 both"]["value"] == r["equal_amp"]["latency_ratio"]
    assert checks["faster_rcnn_r50_fpn latency bfloat16 both"]["goal"] == 0.75
    # the floor the shared kernels set, at each precision, from the torchvision side at that precision
    assert set(r["kernels"]) == set(compare.SIDES + compare.CONTROLS)
    assert r["bounds"]["fp32"]["train_ratio_max"] == 1 / r["kernels"]["torchvision"]["train"]["share"]
    assert r["bounds"]["bfloat16"]["latency_ratio_min"] == r["kernels"]["torchvision_amp"]["infer"]["share"]
    # and the floor detseg's own kernels set (channels-last fp32 runs other kernels than torchvision's NCHW)
    own = r["own_kernel_bounds"]["fp32"]
    assert own["train_ratio_max"] == pytest.approx(
        1000 / r["torchvision"]["train_ips"] / r["kernels"]["detseg_fp32"]["train"]["kernel_ms"])
    assert r["own_kernel_bounds"]["bfloat16"]["latency_ratio_min"] == \
        r["kernels"]["detseg"]["infer"]["kernel_ms"] / r["torchvision_amp"]["latency_ms"]
    assert all(0 < k[part]["share"] < 1 for k in r["kernels"].values() for part in ("train", "infer"))
    lines = _compare_lines({"faster_rcnn_r50_fpn": r}, checks)
    assert "bfloat16 autocast" in lines[0]
    assert lines[-4].startswith("  both fp32") and lines[-2].startswith("  both bfloat16")
    assert all(("PASS" in line or "MISS" in line) and line.count("goal") == 2 for line in lines[-4::2])
    assert "at most train" in lines[-3] and "at most train" in lines[-1]
    assert "with detseg's own" in lines[-3] and "with detseg's own" in lines[-1]


def test_on_a_cpu_without_bf16_the_default_ratios_are_the_fp32_goals(monkeypatch):
    from detseg.benchmarks import compare
    from detseg.engine import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert compare.sides_for("faster_rcnn_r50_fpn") == compare.SIDES
    r = compare.compare_model("faster_rcnn_r50_fpn", batch_size=1, rounds=1, size=128, warmup=0)
    assert r["precision"] == "float32" and "equal_amp" not in r
    assert r["equal_fp32"] == {"train_ratio": r["train_ratio"], "latency_ratio": r["latency_ratio"]}
    names = [c["name"] for c in all_checks({"compare": {"faster_rcnn_r50_fpn": r}})]
    assert "faster_rcnn_r50_fpn train fp32 both" in names and not any("bfloat16" in n for n in names)


def test_gpu_figures_code_runs_on_the_cpu_at_a_tiny_size():
    """Section 6 only runs where CUDA is; its code path is the same on the CPU (without memory figures)."""
    from detseg.benchmarks.gpu import MODELS, gpu_figures
    from detseg.benchmarks.report import _gpu_lines, all_checks

    r = gpu_figures(rounds=1, batch_size=1, height=96, width=128, device="cpu")
    assert r["size"] == [96, 128] and r["amp"] == "bf16" and r["channels_last"] is True
    assert tuple(r["models"]) == MODELS
    for row in r["models"].values():
        assert row["train_ratio"] == row["detseg"]["train_ips"] / row["torchvision"]["train_ips"]
        assert row["infer_ratio"] == row["detseg"]["infer_ips"] / row["torchvision"]["infer_ips"]
        assert "train_peak_mb" not in row["detseg"] and "train_memory_ratio" not in row
    checks = {c["name"]: c for c in all_checks({"gpu": r})}
    assert len(checks) == 2 * len(MODELS)
    assert sum("mask_rcnn_r50_fpn" in line for line in _gpu_lines(r, checks)) == 1


def test_wide_images_stretch_boxes_and_masks_together():
    import torch

    from detseg.benchmarks.gpu import wide_images
    from detseg.benchmarks.throughput import box_masks

    images, targets = wide_images(2, 64, 128, with_masks=True)
    assert images[0].shape == (3, 64, 128) and images[0].dtype == torch.uint8
    for t in targets:
        assert t["masks"].shape == (len(t["boxes"]), 64, 128) and t["sem_seg"].shape == (64, 128)
        # each mask is still its box: the mask drawn from the stretched box, up to a pixel at the edges
        redrawn = box_masks(t["boxes"], 128)[:, :64]
        assert (redrawn != t["masks"]).float().mean() < 0.05


@pytest.mark.slow
def test_compare_torchvision_quick_end_to_end(tmp_path, shapes_root):
    out = tmp_path / "compare.json"
    cmd = [sys.executable, "tools/benchmark.py", "--compare-torchvision", "--quick", "--output", str(out),
           "--shapes", str(shapes_root)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads(out.read_text())
    assert {"machine", "compare", "overhead", "eval", "data_wait", "memory", "gpu", "checks"} <= set(r)
    assert set(r["compare"]) == {"faster_rcnn_r50_fpn", "mask_rcnn_r50_fpn", "ssd300_vgg16"}
    for row in r["compare"].values():
        d, t = row["detseg"], row["torchvision"]
        assert row["train_ratio"] == pytest.approx(d["train_ips"] / t["train_ips"], rel=1e-12)  # one round
        assert row["latency_ratio"] == pytest.approx(d["latency_ms"] / t["latency_ms"], rel=1e-12)
    o = r["overhead"]
    assert o["ratio"] == o["full_ms"] / o["backbone_neck_ms"]
    assert o["flop_ratio"] == pytest.approx(o["gflops"]["full"] / o["gflops"]["backbone_neck"]) and o["flop_ratio"] > 1
    assert o["ratio_over_flops"] == pytest.approx(o["ratio"] / o["flop_ratio"])
    (goal,) = [c for c in r["checks"] if c["name"] == "inference / (backbone+neck x FLOP ratio)"]
    assert goal["value"] == o["ratio_over_flops"] and goal["goal"] == 1.05
    assert sum(v for k, v in o["breakdown_ms"].items() if k != "other") <= o["breakdown_total_ms"]
    for iou_type in ("bbox", "segm"):
        e = r["eval"][iou_type]
        assert e["speedup"] == e["pycocotools_s"] / e["detseg_s"] and e["max_stat_diff"] <= 1e-12
    assert set(r["data_wait"]) == {"faster_rcnn", "ssd", "mask_rcnn"}
    for row in r["data_wait"].values():
        assert row["fraction"] == row["data_ms"] / row["step_ms"] and row["iters"] == 2
    for row in r["memory"].values():
        assert 100 < row["detseg"]["peak_rss_mb"] < 64 * 1024
        assert row["rss_ratio"] == row["detseg"]["peak_rss_mb"] / row["torchvision"]["peak_rss_mb"]
    numbers = list(numbers_in({k: r[k] for k in ("compare", "overhead", "data_wait", "memory")}))
    assert numbers and all(math.isfinite(x) for x in numbers)
    assert all(row[side][k] > 0 for row in r["compare"].values() for side in ("detseg", "torchvision")
               for k in ("train_ips", "latency_ms"))
    names = {c["name"] for c in r["checks"]}
    assert "inference / (backbone+neck x FLOP ratio)" in names and "segm eval speed-up" in names and len(names) >= 15
    assert all(c["pass"] == {">=": c["value"] >= c["goal"], "<=": c["value"] <= c["goal"],
                             "<": c["value"] < c["goal"]}[c["op"]] for c in r["checks"])
    for line in ("1. speed", "2. overhead", "3. COCO evaluation", "4. data wait", "5. peak memory", "6. GPU"):
        assert line in result.stdout
    assert "PASS" in result.stdout or "MISS" in result.stdout

"""Goals of issue 6 checked against measured numbers, and the printed table."""
from __future__ import annotations

import math
import operator

OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt, "==": operator.eq}

TRAIN_RATIO = 1.3  # detseg / torchvision training images/s
LATENCY_RATIO = 0.75  # detseg / torchvision batch-1 ms per image
# full inference / (backbone + neck x the FLOP ratio): what RoIAlign, NMS and the glue add to the counted
# arithmetic (the plain full / backbone+neck ratio cannot go below the FLOP ratio, 1.75x for R50-FPN)
OVERHEAD_RATIO = 1.05
EVAL_SPEEDUP = {"bbox": 3.0, "segm": 5.0}  # plain pycocotools seconds / detseg's evaluation seconds
DATA_WAIT = 0.10  # data wait / iteration time
MEMORY_RATIO = 1.0  # detseg / torchvision peak
STAT_TOLERANCE = 1e-12  # the backends sum in different orders: last-bit differences are the same result


def check(name: str, value: float, op: str, threshold: float) -> dict:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and OPS[op](value, threshold)
    return {"name": name, "value": value, "op": op, "goal": threshold, "pass": bool(ok)}


def all_checks(results: dict) -> list[dict]:
    checks = []
    for name, r in results.get("compare", {}).items():
        checks.append(check(f"{name} train detseg/torchvision", r["train_ratio"], ">=", TRAIN_RATIO))
        checks.append(check(f"{name} latency detseg/torchvision", r["latency_ratio"], "<=", LATENCY_RATIO))
        for label, ratios in equal_precisions(r).items():
            checks.append(check(f"{name} train {label} both", ratios["train_ratio"], ">=", TRAIN_RATIO))
            checks.append(check(f"{name} latency {label} both", ratios["latency_ratio"], "<=", LATENCY_RATIO))
        if "compiled_latency_ratio" in r:
            checks.append(check(f"{name} latency detseg test.compile/torchvision", r["compiled_latency_ratio"],
                                "<=", LATENCY_RATIO))
    for key, name in OVERHEADS.items():
        if key in results and "flop_ratio" in results[key]:
            checks.append(check(name, results[key]["ratio_over_flops"], "<=", OVERHEAD_RATIO))
    for iou_type in ("bbox", "segm"):
        if iou_type in results.get("eval", {}):
            r = results["eval"][iou_type]
            checks.append(check(f"{iou_type} eval speed-up", r["speedup"], ">=", EVAL_SPEEDUP[iou_type]))
            checks.append(check(f"{iou_type} stats max difference", r["max_stat_diff"], "<=", STAT_TOLERANCE))
    for name, r in results.get("data_wait", {}).items():
        checks.append(check(f"{name} data wait / step", r["fraction"], "<", DATA_WAIT))
    for name, r in results.get("memory", {}).items():
        checks.append(check(f"{name} peak RSS detseg/torchvision", r["rss_ratio"], "<=", MEMORY_RATIO))
        if "cuda_ratio" in r:
            checks.append(check(f"{name} CUDA peak detseg/torchvision", r["cuda_ratio"], "<=", MEMORY_RATIO))
    gpu = results.get("gpu")
    for name, r in (gpu or {}).get("models", {}).items():  # the CPU goals, applied to the GPU figures
        checks.append(check(f"GPU {name} train detseg/torchvision", r["train_ratio"], ">=", TRAIN_RATIO))
        checks.append(check(f"GPU {name} infer img/s detseg/torchvision", r["infer_ratio"], ">=", 1 / LATENCY_RATIO))
    return checks


# results key -> its goal's name: the default precision, and fp32 where the default is not
OVERHEADS = {"overhead": "inference / (backbone+neck x FLOP ratio)",
             "overhead_fp32": "inference / (backbone+neck x FLOP ratio), fp32"}


def equal_precisions(r: dict) -> dict:
    """precision name -> detseg/torchvision ratios with both sides at that precision: fp32, and the
    autocast type where detseg's default is one (the CPU has bf16 in hardware)."""
    out = {"fp32": r["equal_fp32"]} if "equal_fp32" in r else {}
    if "equal_amp" in r:
        out[r["precision"]] = r["equal_amp"]
    return out


def _mark(checks: dict, name: str) -> str:
    c = checks[name]
    return f"goal {c['op']} {c['goal']:g}  {'PASS' if c['pass'] else 'MISS'}"


def format_report(results: dict) -> str:
    checks = {c["name"]: c for c in results["checks"]}
    m = results["machine"]
    lines = [f"detseg vs torchvision, {m['date']}, {m.get('cpu_speed', m['cpu'])} ({m['cpu_count']} cores, {m['threads']} threads), "
             f"torch {m['torch']}, device {m['device']}, load average {m['load_average']}"
             + ("  [--quick: sizes and counts shrunk, numbers are not comparable]" if results.get("quick") else "")]
    lines += _compare_lines(results.get("compare", {}), checks)
    lines += _overhead_lines(results.get("overhead"), checks, OVERHEADS["overhead"])
    lines += _overhead_lines(results.get("overhead_fp32"), checks, OVERHEADS["overhead_fp32"], control=True)
    lines += _eval_lines(results.get("eval"), checks)
    lines += _data_lines(results.get("data_wait", {}), checks)
    lines += _memory_lines(results.get("memory", {}), checks)
    lines += _gpu_lines(results.get("gpu"), checks)
    passed = sum(c["pass"] for c in results["checks"])
    lines.append(f"\n{passed}/{len(results['checks'])} goals met")
    return "\n".join(lines)


def _compare_lines(compare: dict, checks: dict) -> list[str]:
    precisions = {r["precision"] for r in compare.values() if r.get("precision", "float32") != "float32"}
    default = f"detseg at its default precision ({', '.join(sorted(precisions))} autocast), torchvision fp32; " \
        if precisions else ""
    lines = [f"\n1. speed (interleaved rounds: medians, and ratios as the median of each round's own ratio; "
             f"{default}ds/tv)",
             f"{'model':<22}{'size':>10}{'train img/s ds/tv':>20}{'ratio':>7}  {'':<18}"
             f"{'latency ms ds/tv':>20}{'ratio':>7}"]
    for name, r in compare.items():
        d, t = r["detseg"], r["torchvision"]
        lines.append(f"{name:<22}{r['size']:>6} b{r['batch_size']:<2}"
                     f"{d['train_ips']:>10.2f}/{t['train_ips']:<9.2f}{r['train_ratio']:>6.2f}x  "
                     f"{_mark(checks, name + ' train detseg/torchvision'):<18}"
                     f"{d['latency_ms']:>10.1f}/{t['latency_ms']:<9.1f}{r['latency_ratio']:>6.2f}x  "
                     f"{_mark(checks, name + ' latency detseg/torchvision'):<18}"
                     f"  detections {d['detections']}/{t['detections']}")
        if "detseg_compiled" in r:
            c = r["detseg_compiled"]
            lines.append(f"{'  with test.compile':<58}{c['latency_ms']:>10.1f}/{t['latency_ms']:<9.1f}"
                         f"{r['compiled_latency_ratio']:>6.2f}x  "
                         f"{_mark(checks, name + ' latency detseg test.compile/torchvision'):<18}"
                         f"  detections {c['detections']}/{t['detections']}")
        for label, ratios in equal_precisions(r).items():
            lines.append(_equal_precision_line(name, label, ratios, checks))
            if label in r.get("bounds", {}):
                lines.append(_bound_line(r, label))
    return lines


def _bound_line(r: dict, label: str) -> str:
    """What the shared convolution and matmul kernels leave to win at this precision."""
    side = "torchvision" if label == "fp32" else "torchvision_amp"
    ours = "detseg" if side == "torchvision_amp" or "detseg_fp32" not in r else "detseg_fp32"
    tv, ds, b = r["kernels"][side], r["kernels"][ours], r["bounds"][label]
    line = (f"    kernels (conv + matmul, profiled): torchvision {tv['train']['share']:.0%} of a training step, "
            f"{tv['infer']['share']:.0%} of a prediction (detseg {ds['train']['share']:.0%}, "
            f"{ds['infer']['share']:.0%}); with the same kernels at most train {b['train_ratio_max']:.2f}x, "
            f"latency at least {b['latency_ratio_min']:.2f}x")
    own = r.get("own_kernel_bounds", {}).get(label)
    if own is None:
        return line
    return (line + f"; with detseg's own ({ds['train']['kernel_ms']:.0f} / {ds['infer']['kernel_ms']:.0f} ms "
            f"against torchvision's timed step / prediction) at most {own['train_ratio_max']:.2f}x, "
            f"at least {own['latency_ratio_min']:.2f}x")


def _equal_precision_line(name: str, label: str, ratios: dict, checks: dict) -> str:
    """detseg against torchvision with both at one precision (torchvision in detseg's autocast and memory
    format for the autocast type): what the code does, apart from what the precision buys."""
    return (f"{'  both ' + label:<42}train {ratios['train_ratio']:>5.2f}x  {_mark(checks, f'{name} train {label} both'):<18}"
            f"{'latency':>20} {ratios['latency_ratio']:>5.2f}x  {_mark(checks, f'{name} latency {label} both')}")


def _overhead_lines(o: dict | None, checks: dict, goal: str, control: bool = False) -> list[str]:
    if not o:
        return []
    parts = ", ".join(f"{k} {v:.1f}" for k, v in o["breakdown_ms"].items())
    title = "the same at equal precision" if control else "2. overhead"
    return [f"\n{title}, Faster R-CNN R50-FPN {o['size']}x{o['size']} batch 1 inference, {o.get('precision', 'float32')}",
            f"full {o['full_ms']:.1f} ms / backbone+neck {o['backbone_neck_ms']:.1f} ms = {o['ratio']:.2f}x (no goal: "
            "it cannot go below the FLOP ratio)",
            *_flop_lines(o, checks, goal),
            f"breakdown (ms, mean of hooked runs, total {o['breakdown_total_ms']:.1f}): {parts}"]


def _flop_lines(o: dict, checks: dict, goal: str) -> list[str]:
    if "flop_ratio" not in o:
        return []
    g = o["gflops"]
    return [f"arithmetic: {g['full']:.1f} / {g['backbone_neck']:.1f} GFLOP (convolutions and matmuls; "
            f"RoIAlign and NMS uncounted) = {o['flop_ratio']:.2f}x, the time ratio at an equal FLOP rate",
            f"time ratio / FLOP ratio = {o['ratio']:.2f} / {o['flop_ratio']:.2f} = {o['ratio_over_flops']:.3f}x  "
            f"{_mark(checks, goal)}  (RoIAlign, NMS and all glue beyond the "
            "counted arithmetic)"]


def _eval_lines(e: dict | None, checks: dict) -> list[str]:
    if not e:
        return []
    lines = [f"\n3. COCO evaluation, {e['images']} images, {e['ground_truth']} objects, {e['detections']} detections "
             f"(loading the results, evaluate, accumulate, summarize; median of {e.get('repeats', 1)} alternating runs; detseg: "
             f"{e.get('detseg_backend', '?')}, {e.get('detseg_processes', '?')} process(es))"]
    for iou_type in ("bbox", "segm"):
        r = e[iou_type]
        same = "identical" if r["identical"] else f"max difference {r['max_stat_diff']:.3g}"
        lines.append(f"{iou_type:<5} pycocotools {r['pycocotools_s']:.2f} s, detseg "
                     f"{r['detseg_s']:.2f} s: {r['speedup']:.1f}x  "
                     f"{_mark(checks, iou_type + ' eval speed-up')}; 12 stats {same}  "
                     f"{_mark(checks, iou_type + ' stats max difference')}")
    return lines


def _data_lines(data: dict, checks: dict) -> list[str]:
    lines = ["\n4. data wait in real training (Trainer's data_time / time, after warm-up)"] if data else []
    for name, r in data.items():
        lines.append(f"{r['config']:<34} workers {r['num_workers']} batch {r['batch_size']}: "
                     f"{r['data_ms']:.1f} / {r['step_ms']:.1f} ms = {r['fraction']:.3f}  "
                     f"{_mark(checks, name + ' data wait / step')}")
    return lines


def _memory_lines(memory: dict, checks: dict) -> list[str]:
    lines = ["\n5. peak memory of training (each side in its own process)"] if memory else []
    for name, r in memory.items():
        d, t = r["detseg"], r["torchvision"]
        lines.append(f"{name:<22} {r['size']} b{r['batch_size']} x{r['iters']} iters: RSS {d['peak_rss_mb']:.0f} / "
                     f"{t['peak_rss_mb']:.0f} MiB = {r['rss_ratio']:.2f}x  "
                     f"{_mark(checks, name + ' peak RSS detseg/torchvision')}")
        if "cuda_ratio" in r:
            lines.append(f"{'':<22} CUDA max allocated {d['cuda_max_allocated_mb']:.0f} / "
                         f"{t['cuda_max_allocated_mb']:.0f} MiB = {r['cuda_ratio']:.2f}x  "
                         f"{_mark(checks, name + ' CUDA peak detseg/torchvision')}")
    return lines


def _gpu_lines(gpu: dict | None, checks: dict) -> list[str]:
    if not gpu:
        return ["\n6. GPU figures: no CUDA device here"]
    h, w = gpu["size"]
    lines = [f"\n6. GPU {gpu['device']}: R50-FPN {h}x{w}, bf16 autocast and channels_last on both sides"]
    for name, r in gpu["models"].items():
        d, t = r["detseg"], r["torchvision"]
        lines += [f"{name:<22} train img/s (batch {r['batch_size']}) {d['train_ips']:.1f} / {t['train_ips']:.1f} = "
                  f"{r['train_ratio']:.2f}x  {_mark(checks, f'GPU {name} train detseg/torchvision')}",
                  f"{'':<22} infer img/s (batch 1) {d['infer_ips']:.1f} / {t['infer_ips']:.1f} = "
                  f"{r['infer_ratio']:.2f}x  {_mark(checks, f'GPU {name} infer img/s detseg/torchvision')}"]
        if "train_memory_ratio" in r:
            lines.append(f"{'':<22} training peak {d['train_peak_mb']:.0f} / {t['train_peak_mb']:.0f} MiB = "
                         f"{r['train_memory_ratio']:.2f}x (each side alone on the GPU)")
    return lines

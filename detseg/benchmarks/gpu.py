"""Faster and Mask R-CNN R50-FPN at COCO's 800x1333 on a GPU: detseg with bf16 autocast and channels_last
(its train.amp / train.channels_last) beside torchvision under the same autocast and memory format, with
each side's peak CUDA memory.

``python -m detseg.benchmarks.gpu [--device cuda] [--output FILE] ...`` prints (and writes) the figures as
JSON; tools/gpu_check.sh runs it as one step of the GPU check (detseg/benchmarks/gpu_check.py)."""
from __future__ import annotations

import argparse
import gc
import json
from typing import Callable

import torch

from detseg.benchmarks.throughput import synthetic_images
from detseg.benchmarks.compare import Contender, detseg_contender, load_model_config, torchvision_contender
from detseg.benchmarks.timing import interleaved_medians, sync
from detseg.models.build import trains_on_masks

MODELS = ("faster_rcnn_r50_fpn", "mask_rcnn_r50_fpn")
AMP = ("train.amp=bf16", "train.channels_last=true")


def wide_images(num: int, height: int, width: int, with_masks: bool = False) -> tuple[list[torch.Tensor], list[dict]]:
    """synthetic_images stretched from height x height to height x width, boxes and masks stretched alike."""
    images, targets = synthetic_images(num, height, with_masks=with_masks)
    stretch = torch.tensor([width / height, 1.0, width / height, 1.0])
    wide = [torch.nn.functional.interpolate(img[None].float(), size=(height, width), mode="bilinear")[0]
            .round().to(torch.uint8) for img in images]

    def nearest(t: torch.Tensor) -> torch.Tensor:  # [n, H, W] label or mask planes, kept integral
        return torch.nn.functional.interpolate(t[None].float(), size=(height, width))[0].to(t.dtype)

    stretched = []
    for t in targets:
        row = {"boxes": t["boxes"] * stretch, "labels": t["labels"], "sem_seg": nearest(t["sem_seg"][None])[0]}
        if with_masks:
            row["masks"] = nearest(t["masks"])
        stretched.append(row)
    return wide, stretched


def isolated_peaks(build: Callable[[], Contender], device: str, steps: int = 2) -> dict | None:
    """Peak CUDA memory of one side alone on the GPU, above what was allocated before it was built: its
    weights and a batch-1 prediction, then weights, optimizer state and ``steps`` training steps. The
    side is freed afterwards, so that the other side's figures do not carry it. None off CUDA."""
    if not device.startswith("cuda"):
        return None
    gc.collect()
    torch.cuda.empty_cache()
    sync()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    side = build()
    side.predict_one()
    sync()
    infer = torch.cuda.max_memory_allocated() - base
    torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        side.train_step()
    sync()
    train = torch.cuda.max_memory_allocated() - base
    del side
    gc.collect()
    torch.cuda.empty_cache()
    return {"infer_peak_mb": infer / 2**20, "train_peak_mb": train / 2**20}


def model_figures(name: str, rounds: int, batch_size: int, height: int, width: int, device: str,
                  quick: bool = False) -> dict:
    """Interleaved detseg / torchvision medians for one model under bf16 autocast; ratios are detseg over
    torchvision (img/s, so higher is better; memory, lower is better). ``quick``: one call per round and no
    warm-up (tests; numbers not comparable)."""
    cfg = load_model_config(name, AMP)
    torch.manual_seed(0)
    images, targets = wide_images(batch_size, height, width, with_masks=trains_on_masks(cfg.model))
    builders = {"detseg": lambda: detseg_contender(cfg, images, targets, batch_size, device),
                # min_size = max_size = the long side: torchvision's resize leaves height x width as it is
                "torchvision": lambda: torchvision_contender(cfg, images, targets, batch_size, width, device, amp=True)}
    peaks = {side: isolated_peaks(build, device) for side, build in builders.items()}
    sides = {side: build() for side, build in builders.items()}
    # inference first, as compare_model does: freshly initialised, both sides keep their maximum number
    # of detections, an equal post-processing load
    calls, warmup = (1, 0) if quick else (5, 1)
    infer = interleaved_medians({k: s.predict_one for k, s in sides.items()}, rounds, calls, warmup)
    train = interleaved_medians({k: s.train_step for k, s in sides.items()}, rounds, max(1, calls - 2), warmup)
    result = {"size": [height, width], "batch_size": batch_size}
    for side in sides:
        result[side] = {"train_ips": batch_size / train[side], "infer_ips": 1 / infer[side], **(peaks[side] or {})}
    d, t = result["detseg"], result["torchvision"]
    result["train_ratio"] = d["train_ips"] / t["train_ips"]
    result["infer_ratio"] = d["infer_ips"] / t["infer_ips"]
    if peaks["detseg"] is not None:
        result["train_memory_ratio"] = d["train_peak_mb"] / t["train_peak_mb"]
    return result


def gpu_figures(rounds: int = 5, batch_size: int = 2, height: int = 800, width: int = 1333,
                device: str = "cuda", models: tuple[str, ...] = MODELS, quick: bool = False,
                done: Callable[[dict], None] = lambda figures: None) -> dict:
    """Every model of ``models`` on ``device``; on the CPU the same code runs (tests), without memory figures.
    ``done`` sees the figures so far after each model (a run stopped at its time limit keeps those)."""
    result = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else device,
              "size": [height, width], "batch_size": batch_size, "rounds": rounds, "amp": "bf16",
              "channels_last": True, "models": {}}
    for name in models:
        result["models"][name] = model_figures(name, rounds, batch_size, height, width, device, quick)
        done(result)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per side")
    parser.add_argument("--batch-size", type=int, default=2, help="images per training step")
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1333)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--quick", action="store_true", help="one call per round, no warm-up (tests)")
    parser.add_argument("--output", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    models = tuple(m for m in args.models.split(",") if m)
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS)})")

    def write(figures: dict) -> None:
        if args.output:
            with open(args.output, "w") as f:
                f.write(json.dumps(figures, indent=2) + "\n")

    print(json.dumps(gpu_figures(args.rounds, args.batch_size, args.height, args.width, args.device, models,
                                 args.quick, write), indent=2))


if __name__ == "__main__":
    main()

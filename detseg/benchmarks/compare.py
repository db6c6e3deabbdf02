"""Training throughput and batch-1 latency of detseg models beside their torchvision twins.

Both sides get the same synthetic images at a size torchvision's internal resize leaves unchanged,
so the ratios compare the models, not their pre-processing.
"""
from __future__ import annotations

import copy
import statistics
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from detseg.benchmarks.kernel_share import bounds, kernel_share, own_kernel_bounds
from detseg.benchmarks.throughput import synthetic_images, to_batch
from detseg.benchmarks.timing import interleaved_samples, paired_ratio
from detseg.config import load_config
from detseg.engine import precision
from detseg.engine.compile import compile_for_inference
from detseg.models.build import build_model, trains_on_masks
from detseg.interop.torchvision_twin import torchvision_twin

ROOT = Path(__file__).resolve().parents[2]

# name -> (config, square input side)
MODELS = {
    "faster_rcnn_r50_fpn": ("configs/faster_rcnn/coco_r50_fpn_1x.yaml", 512),
    "mask_rcnn_r50_fpn": ("configs/mask_rcnn/coco_r50_fpn_1x.yaml", 512),
    "ssd300_vgg16": ("configs/ssd/coco_ssd300_vgg16.yaml", 300),
}


@dataclass
class Contender:
    """One model ready to time: a full SGD step on a fixed batch, and one batch-1 prediction."""
    model: torch.nn.Module
    train_step: Callable[[], None]
    predict_one: Callable[[], object]
    count: Callable[[object], int]  # detections in predict_one's output: the post-processing's workload
    precision: Callable[[], object] = nullcontext  # the autocast context both calls run in


def load_model_config(name: str, overrides: tuple[str, ...] = ()):
    config, _ = MODELS[name]
    # timing needs no trained weights (and no download)
    return load_config(ROOT / config, ["model.backbone.weights=null", *overrides])


def _sgd_step(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], precision=nullcontext) -> Callable[[], None]:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step():
        model.train()
        with precision():
            loss = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _predictor(model: torch.nn.Module, call: Callable[[], object], precision=nullcontext) -> Callable[[], None]:
    def predict():
        model.eval()
        with torch.no_grad(), precision():
            return call()

    return predict


def _place(model: torch.nn.Module, cfg, device: str, amp: bool) -> Callable[[], object]:
    """Move ``model`` to ``device``; with ``amp`` in the config's memory format. Returns the autocast
    context its calls run in (train.amp with ``amp``, full precision without)."""
    if not amp:
        model.to(device)
        return nullcontext
    precision.prepare_model(model, cfg.train, device)
    return partial(precision.autocast, cfg.train, device)


def detseg_contender(cfg, images, targets, batch_size: int, device: str = "cpu") -> Contender:
    """detseg's model with the config's train.amp / train.channels_last, applied as the Trainer applies them."""
    model = build_model(cfg.model, cfg.model.num_classes)
    mode = _place(model, cfg, device, amp=True)
    batch = to_batch(images[:batch_size], targets[:batch_size]).to(device)
    single = to_batch(images[:1], targets[:1]).to(device)
    return Contender(model, _sgd_step(model, lambda: sum(model(batch, mode="loss").values()), mode),
                     _predictor(model, lambda: model(single, mode="predict"), mode), lambda out: len(out[0]), mode)


def torchvision_contender(cfg, images, targets, batch_size: int, size: int, device: str = "cpu",
                          amp: bool = False) -> Contender:
    """``amp``: the autocast and memory format detseg's config runs in (train.amp / train.channels_last),
    given to torchvision's model, as its reference script's --amp autocasts."""
    model = torchvision_twin(cfg.model, cfg.model.num_classes, size)
    if model is None:
        raise ValueError(f"{cfg.model.arch} with backbone {cfg.model.backbone.name} has no torchvision twin")
    mode = _place(model, cfg, device, amp)
    floats = [img.to(device).float() / 255 for img in images]  # torchvision normalises inside the model
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    return Contender(model, _sgd_step(model, lambda: sum(model(floats[:batch_size], targets[:batch_size]).values()), mode),
                     _predictor(model, lambda: model(floats[:1]), mode), lambda out: len(out[0]["boxes"]), mode)


SIDES = ("detseg", "torchvision")
# At equal arithmetic, where detseg's default is not fp32 (bf16 on a CPU with bf16 in hardware): detseg
# forced to fp32 (train.amp=false, with the memory format "auto" picks for fp32), and torchvision under
# detseg's autocast and memory format, so that the ratios show what the precision buys and what the code does.
CONTROLS = ("detseg_fp32", "torchvision_amp")


def sides_for(name: str, device: str = "cpu") -> tuple[str, ...]:
    """The sides compare_model times: both defaults, plus the equal-precision controls when they differ."""
    if precision.amp_dtype(load_model_config(name).train.amp, device) is None:
        return SIDES
    return SIDES + CONTROLS


def contender(name: str, side: str, batch_size: int, size: int, device: str = "cpu") -> Contender:
    """``side`` of model ``name`` on seeded synthetic images: "detseg" as its config trains and predicts
    (train.amp / train.channels_last), "torchvision" as torchvision runs by default (fp32), or a control."""
    # detseg_fp32: the config with train.amp=false, in the memory format detseg picks for fp32 there
    cfg = load_model_config(name, ("train.amp=false",) if side == "detseg_fp32" else ())
    torch.manual_seed(0)  # the same images for both sides, reproducible random weights
    images, targets = synthetic_images(batch_size, size, with_masks=trains_on_masks(cfg.model))
    if side in ("detseg", "detseg_fp32"):
        return detseg_contender(cfg, images, targets, batch_size, device)
    if side == "torchvision":
        return torchvision_contender(cfg, images, targets, batch_size, size, device)
    if side == "torchvision_amp":  # detseg's precision and memory format, given to torchvision's model
        return torchvision_contender(cfg, images, targets, batch_size, size, device, amp=True)
    raise ValueError(f"unknown side {side!r} (known: {', '.join(SIDES + CONTROLS)})")


def compiled_contender(base: Contender, cfg, images, targets) -> Contender:
    """detseg with ``test.compile`` (detseg.engine.compile) on a copy of ``base``'s weights; inference only."""
    model = copy.deepcopy(base.model)
    # compiled code is cached per forward's code object: the models compared before would count
    # against the recompile limit of this one's (a shared RPN head compiles once per FPN level)
    torch._dynamo.reset()
    compile_for_inference(model)
    single = to_batch(images[:1], targets[:1])
    return Contender(model, base.train_step, _predictor(model, lambda: model(single, mode="predict"), base.precision),
                     base.count, base.precision)


def compare_model(name: str, batch_size: int = 2, rounds: int = 5, calls: int = 1, size: int | None = None,
                  warmup: int = 1, compiled: bool = False, profiled_calls: int = 2) -> dict:
    """Interleaved detseg / torchvision medians for one model; ratios are detseg over torchvision.
    ``compiled``: also time detseg's inference with test.compile (compiling once before the rounds)."""
    size = size or MODELS[name][1]
    sides = {side: contender(name, side, batch_size, size) for side in sides_for(name)}
    predictors = {k: s.predict_one for k, s in sides.items()}
    if compiled:
        cfg = load_model_config(name)
        torch.manual_seed(0)
        images, targets = synthetic_images(batch_size, size, with_masks=trains_on_masks(cfg.model))
        sides["detseg_compiled"] = compiled_contender(sides["detseg"], cfg, images, targets)
        predictors["detseg_compiled"] = sides["detseg_compiled"].predict_one
        predictors["detseg_compiled"]()  # the compilation itself is not timed
    # inference first: freshly initialised, both sides keep their maximum number of detections, an equal
    # post-processing load; a few SGD steps later one side may keep 0 and the other 30
    infer = interleaved_samples(predictors, rounds, calls * 2 if warmup else 1, warmup)
    detections = {side: s.count(s.predict_one()) for side, s in sides.items()}
    compiled_side = sides.pop("detseg_compiled", None)
    train = interleaved_samples({k: s.train_step for k, s in sides.items()}, rounds, calls, warmup)
    result = {"config": MODELS[name][0], "size": size, "batch_size": batch_size, "rounds": rounds}
    for side in sides:
        result[side] = {"train_ips": batch_size / statistics.median(train[side]),
                        "latency_ms": statistics.median(infer[side]) * 1000, "detections": detections[side],
                        "train_s": train[side], "latency_s": infer[side]}
    result.update(_ratios(train, infer, "detseg", "torchvision"))
    result["precision"] = precision.dtype_name(load_model_config(name).train, "cpu")
    if "detseg_fp32" in result:
        result["equal_fp32"] = _ratios(train, infer, "detseg_fp32", "torchvision")
        result["equal_amp"] = _ratios(train, infer, "detseg", "torchvision_amp")
    else:  # detseg's default is fp32 here (no bf16 in hardware): the default ratios are the equal ones
        result["equal_fp32"] = _ratios(train, infer, "detseg", "torchvision")
    result["kernels"] = {side: {"train": kernel_share(s.train_step, profiled_calls),
                                "infer": kernel_share(s.predict_one, profiled_calls)} for side, s in sides.items()}
    result.update(_floors(result))
    if compiled_side is not None:
        result["detseg_compiled"] = {"latency_ms": statistics.median(infer["detseg_compiled"]) * 1000,
                                     "detections": detections["detseg_compiled"], "latency_s": infer["detseg_compiled"]}
        result["compiled_latency_ratio"] = paired_ratio(infer, "detseg_compiled", "torchvision")
    return result


def _floors(result: dict) -> dict:
    """Per precision, the best ratios torchvision's kernels allow ("bounds") and those detseg's own allow."""
    kernels, refs = result["kernels"], _references(result)
    return {"bounds": {label: bounds(kernels[tv]["train"], kernels[tv]["infer"]) for label, (tv, _) in refs.items()},
            "own_kernel_bounds": {
                label: own_kernel_bounds(result["batch_size"] / result[tv]["train_ips"] * 1000,
                                         result[tv]["latency_ms"], kernels[ds]["train"], kernels[ds]["infer"])
                for label, (tv, ds) in refs.items()}}


def _references(result: dict) -> dict:
    """precision label -> (the torchvision side, the detseg side) that run at it (as report.equal_precisions
    labels them)."""
    refs = {"fp32": ("torchvision", "detseg_fp32" if "detseg_fp32" in result else "detseg")}
    if "torchvision_amp" in result:
        refs[result["precision"]] = ("torchvision_amp", "detseg")
    return refs


def _ratios(train: dict, infer: dict, ours: str, theirs: str) -> dict:
    """detseg / torchvision images per second and latency, each the median of the rounds' own ratios."""
    return {"train_ratio": paired_ratio(train, theirs, ours), "latency_ratio": paired_ratio(infer, ours, theirs)}


def compare_all(quick: bool = False, rounds: int = 5, compiled: bool = False) -> dict:
    if quick:  # the end-to-end test: small images, one round, no warm-up (SSD300 stays at 300)
        return {name: compare_model(name, batch_size=1, rounds=1, size=300 if "ssd" in name else 128, warmup=0,
                                    compiled=compiled, profiled_calls=1) for name in MODELS}
    return {name: compare_model(name, rounds=rounds, compiled=compiled) for name in MODELS}

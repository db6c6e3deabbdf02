"""How much of a two-stage detector's inference time is not its backbone: the total over backbone + neck,
and where the rest goes, timed with hooks and method wrappers from outside the model's code."""
from __future__ import annotations

import statistics

import torch
from torch.utils.flop_counter import FlopCounterMode

from detseg.benchmarks.throughput import synthetic_images, to_batch
from detseg.benchmarks.compare import MODELS, load_model_config
from detseg.benchmarks.timing import SectionTimer, interleaved_medians, seconds_per_call
from detseg.engine import precision
from detseg.models.build import build_model

# breakdown part -> the timed sections it is made of (plus, minus)
PARTS = {
    "preprocess": (["preprocess"], []),
    "backbone": (["backbone"], []),
    "neck": (["neck"], []),
    "rpn_head": (["rpn_head"], []),
    "rpn_proposals": (["rpn"], ["rpn_head"]),  # anchors, top-k, decoding, NMS
    "roi_pool": (["roi_pool"], []),
    "box_head": (["box_head", "box_predictor"], []),
    "postprocess": (["roi_predict", "to_original"], ["roi_pool", "box_head", "box_predictor"]),  # decode, NMS, rescale
}


def attach_timers(model) -> SectionTimer:
    timer = SectionTimer()
    timer.method("preprocess", model, "preprocess")
    timer.module("backbone", model.backbone)
    timer.module("neck", model.neck)
    timer.module("rpn", model.proposal_generator)
    timer.module("rpn_head", model.proposal_generator.head)
    timer.method("roi_predict", model.roi_heads, "predict")
    timer.method("to_original", model, "to_original")
    timer.module("roi_pool", model.roi_heads.pooler)
    timer.module("box_head", model.roi_heads.box_head)
    timer.module("box_predictor", model.roi_heads.box_predictor)
    return timer


def breakdown(model, batch, calls: int) -> dict:
    """Mean ms per image of each part over ``calls`` hooked predictions; "other" is the total's remainder
    (the hooks' own cost lands there too)."""
    timer = attach_timers(model)
    try:
        with torch.no_grad():
            total = seconds_per_call(lambda: model(batch, mode="predict"), calls)
    finally:
        timer.remove()
    sections = {k: v / calls for k, v in timer.totals.items()}
    parts = {part: sum(sections.get(s, 0.0) for s in plus) - sum(sections.get(s, 0.0) for s in minus)
             for part, (plus, minus) in PARTS.items()}
    parts["other"] = total - sum(parts.values())
    return {"total_ms": total * 1000, "parts_ms": {k: v * 1000 for k, v in parts.items()}}


def counted_flops(call) -> int:
    """FLOPs of ``call`` by torch.utils.flop_counter: convolutions and matmuls; RoIAlign, NMS and the rest
    are not counted. full / backbone+neck is then the time ratio of the same model at an equal FLOP rate
    in both parts: what the arithmetic alone asks, before any framework cost."""
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def measure_overhead(name: str = "faster_rcnn_r50_fpn", size: int = 512, rounds: int = 5, calls: int = 2,
                     fp32: bool = False) -> dict:
    """Full batch-1 inference over backbone + neck alone (interleaved medians), and the breakdown; at the
    config's default precision, or in fp32 with ``fp32``."""
    cfg = load_model_config(name, ("train.amp=false",) if fp32 else ())
    model = precision.prepare_model(build_model(cfg.model, cfg.model.num_classes), cfg.train, "cpu").eval()
    torch.manual_seed(0)
    images, targets = synthetic_images(1, size)
    batch = to_batch(images, targets)
    with torch.no_grad(), precision.autocast(cfg.train, "cpu"):  # as the model predicts by default
        padded = model.preprocess(batch)
        medians = interleaved_medians({"full": lambda: model(batch, mode="predict"),
                                       "backbone_neck": lambda: model.features_of(padded)}, rounds, calls)
        parts = [breakdown(model, batch, calls) for _ in range(max(1, rounds // 2))]
        flops = {"full": counted_flops(lambda: model(batch, mode="predict")),
                 "backbone_neck": counted_flops(lambda: model.features_of(padded))}
    mean_parts = {k: statistics.fmean(p["parts_ms"][k] for p in parts) for k in parts[0]["parts_ms"]}
    return {"config": MODELS[name][0], "size": size, "precision": precision.dtype_name(cfg.train, "cpu"),
            "full_ms": medians["full"] * 1000,
            "backbone_neck_ms": medians["backbone_neck"] * 1000,
            "ratio": medians["full"] / medians["backbone_neck"],
            "gflops": {k: v / 1e9 for k, v in flops.items()}, "flop_ratio": flops["full"] / flops["backbone_neck"],
            "ratio_over_flops": medians["full"] / medians["backbone_neck"] / (flops["full"] / flops["backbone_neck"]),
            "breakdown_total_ms": statistics.fmean(p["total_ms"] for p in parts), "breakdown_ms": mean_parts}


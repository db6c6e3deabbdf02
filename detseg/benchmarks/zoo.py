"""The architecture zoo: every detseg architecture trained and evaluated on the shapes data under one budget.

Each architecture's shapes config (``ZOO_CONFIGS``) is trained by ``tools/train.py`` in its own process
(``train.max_minutes``: the trainer fits its schedule to the budget; or a fixed ``train.max_iters`` for
tests), which also evaluates it on the val split at the end (metrics.json). This process then loads
the run's last.pt and measures, on the first val images at batch size 1 after a warm-up:
inference ms per image (proposals given), selective search ms per image for the models that read
precomputed proposals, and parameters and FLOPs of one forward pass (detseg.analysis.summary) at the
test input size. All shapes configs already share one backbone (a half-width ResNet-18 with BatchNorm,
trained from scratch); what each method puts on top of it (FPN, SSD's extra layer, FCN's skips, R-CNN's
per-region warps) is part of the method and stays. ``shared_backbone`` in each row checks it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from detseg.analysis.summary import summarize
from detseg.config import Config, load_config
from detseg.data.build import build_dataset
from detseg.data.collate import collate
from detseg.data.proposals import proposals_for, uses_precomputed, wrap_with_proposals
from detseg.benchmarks.lineage import selective_search_ms
from detseg.app.pipeline import load_trained_model

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = Path("data/shapes")
SPLITS = ("train", "val")
# the table's order: the region-based lineage, then the one-stage detectors, then segmentation
ZOO_CONFIGS = {
    "rcnn": "configs/rcnn/shapes.yaml",
    "sppnet": "configs/sppnet/shapes.yaml",
    "fast_rcnn": "configs/fast_rcnn/shapes.yaml",
    "faster_rcnn": "configs/faster_rcnn/shapes.yaml",
    "mask_rcnn": "configs/mask_rcnn/shapes.yaml",
    "yolo": "configs/yolo/shapes.yaml",
    "ssd": "configs/ssd/shapes.yaml",
    "fcn": "configs/fcn/shapes_8s.yaml",
}
TITLES = {"rcnn": "R-CNN", "sppnet": "SPPnet", "fast_rcnn": "Fast R-CNN", "faster_rcnn": "Faster R-CNN",
          "mask_rcnn": "Mask R-CNN", "yolo": "YOLO v1", "ssd": "SSD", "fcn": "FCN-8s"}
# what each method builds on the shared backbone: the reason its maps or inputs differ from the others'
METHOD_NOTES = {
    "rcnn": "the backbone runs on every proposal, cropped and warped to 64x64; no neck",
    "sppnet": "FPN, spatial pyramid pooling (4x4, 2x2, 1x1) of each proposal on the s4 map",
    "fast_rcnn": "FPN, RoIPool 7x7 of each proposal on the s4 map",
    "faster_rcnn": "FPN, RPN proposals (inside the model's time), RoIAlign",
    "mask_rcnn": "Faster R-CNN plus a mask branch",
    "yolo": "one s16 map, 14x14 grid",
    "ssd": "SSD needs its own extra layer (s64) on top of s8-s32",
    "fcn": "semantic segmentation: mIoU, not box AP; FCN-8s skips from s8/s16/s32",
}


# The backbone axis: Faster R-CNN's shapes config (FPN over s8/s16/s32, from scratch) with each backbone at
# the width given; widths of 0.5 keep the deep networks near the default's cost on a CPU budget
BACKBONE_AXIS = {
    "resnet18": 0.5,  # the shapes configs' own backbone: the axis' reference
    "mobilenet_v3_large": 1.0,
    "googlenet": 1.0,  # torchvision's definition has no width
    "densenet121": 0.5,
    "se_resnet50": 0.5,
    "mnasnet1_0": 1.0,
    "timm/efficientnet_b0": 1.0,  # timm's networks come at their own width
}
BACKBONE_AXIS_CONFIG = "configs/faster_rcnn/shapes.yaml"


@dataclass(frozen=True)
class ZooEntry:
    """One row of the zoo: a config, what it is called and why it differs, and its own overrides."""
    key: str  # the report's "arch" and the run folder's name
    config: str
    title: str
    note: str
    overrides: tuple[str, ...] = ()
    axis: str = "architecture"  # or "backbone": Faster R-CNN with another backbone


def architecture_entry(arch: str) -> ZooEntry:
    return ZooEntry(arch, ZOO_CONFIGS[arch], TITLES[arch], METHOD_NOTES[arch])


def backbone_entry(name: str) -> ZooEntry:
    width = BACKBONE_AXIS[name]
    title = name + (f" x{width:g}" if width != 1.0 else "")
    return ZooEntry(f"backbone_{name.replace('/', '_')}", BACKBONE_AXIS_CONFIG, title,
                    "Faster R-CNN, FPN over s8/s16/s32", (f"model.backbone.name={name}", f"model.backbone.width={width}"),
                    axis="backbone")


def zoo_entries(archs: list[str], backbones: list[str] = ()) -> list[ZooEntry]:
    """The rows to run, in table order: architectures, then the backbone axis."""
    unknown = [a for a in archs if a not in ZOO_CONFIGS]
    if unknown:
        raise ValueError(f"unknown architecture(s) {', '.join(unknown)}; choose from {', '.join(ZOO_CONFIGS)}")
    unknown = [b for b in backbones if b not in BACKBONE_AXIS]
    if unknown:
        raise ValueError(f"unknown backbone(s) {', '.join(unknown)} for the zoo's backbone axis; choose from "
                         f"{', '.join(BACKBONE_AXIS)}")
    return ([architecture_entry(a) for a in sorted(set(archs), key=list(ZOO_CONFIGS).index)]
            + [backbone_entry(b) for b in sorted(set(backbones), key=list(BACKBONE_AXIS).index)])


class ZooError(RuntimeError):
    """An architecture of the zoo that did not train or could not be measured."""


@dataclass
class ZooSettings:
    output_dir: Path
    minutes: float = 2.0  # train.max_minutes per architecture
    iters: int | None = None  # a fixed train.max_iters instead of the time budget (tests)
    images: int = 20  # val images timed per architecture
    warmup: int = 2
    data_root: Path = DEFAULT_DATA
    image_size: int | None = None  # a smaller (square / shortest-side) input size for every architecture
    threads: int | None = None  # torch threads for training and timing (None: torch's default, one per core)
    overrides: list[str] = field(default_factory=list)  # key=value for every architecture, last


def run_zoo(archs: list[str], settings: ZooSettings, log=print, backbones: list[str] = ()) -> dict:
    """Train, evaluate and measure each of ``archs``, then Faster R-CNN with each of ``backbones``; the
    report that zoo_report writes out. A row that fails is reported (``error``) and the others still run."""
    entries = zoo_entries(archs, backbones)
    ensure_shapes_data(settings.data_root, log)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    load_before, rows = os.getloadavg()[0], []
    for entry in entries:
        try:
            rows.append(run_entry(entry, settings, log))
        except (ZooError, ValueError, OSError) as exc:
            log(f"[zoo] {entry.key} failed: {exc}")
            rows.append({"arch": entry.key, "title": entry.title, "config": entry.config, "axis": entry.axis,
                         "error": str(exc)})
    mark_shared_backbone([r for r in rows if r["axis"] == "architecture"])
    budget = {"iters": settings.iters} if settings.iters else {"minutes": settings.minutes}
    # other jobs on the CPU slow every figure here, and oversubscribed threads slow it many times over
    return {"data_root": str(settings.data_root), **budget, "timed_images": settings.images,
            "image_size": settings.image_size, "threads": torch.get_num_threads(), "cores": os.cpu_count(),
            "load_average": [load_before, os.getloadavg()[0]], "rows": rows}


def ensure_shapes_data(root: Path, log) -> None:
    if (root / "annotations" / "instances_train.json").is_file():
        return
    if root.exists():
        raise ValueError(f"{root} has no annotations/instances_train.json: not a shapes dataset "
                         "(tools/make_dataset.py shapes --output-dir DIR)")
    from detseg.data.datasets.shapes import generate_shapes_dataset

    log(f"[zoo] {root} is missing: generating the shapes dataset (tools/make_dataset.py shapes --output-dir {root})")
    generate_shapes_dataset(root)


def run_entry(entry: ZooEntry, settings: ZooSettings, log) -> dict:
    overrides = arch_overrides(entry.config, settings, entry.overrides)
    cfg = load_config(REPO / entry.config, overrides)
    cache_s = build_proposal_cache(cfg, settings, log)
    run_dir = settings.output_dir / "runs" / entry.key
    log(f"[zoo] {entry.key}: training {budget_text(settings)} (log: {run_dir / 'train.log'})")
    train(entry.config, overrides, run_dir, settings.threads)
    row = measure_run(entry, run_dir, settings)
    row["proposal_cache_minutes"] = None if cache_s is None else cache_s / 60
    log(f"[zoo] {entry.key}: {row_summary(row)}")
    return row


def budget_text(settings: ZooSettings) -> str:
    return f"{settings.iters} iterations" if settings.iters else f"{settings.minutes} min"


def arch_overrides(config: str, settings: ZooSettings, own: tuple[str, ...] = ()) -> list[str]:
    """The row's own overrides (a backbone), data, input size, budget and proposal cache of this zoo run,
    then the user's overrides."""
    base = load_config(REPO / config, list(own))
    out = data_overrides(base, settings.data_root) + size_overrides(base, settings.image_size)
    # every architecture from scratch, so a config that starts from a pre-trained backbone (YOLO and FCN
    # on shapes) is not ahead of the others; the user's overrides can still give one
    out.append("model.backbone.weights=null")
    if settings.iters:
        out += ["train.max_minutes=null", f"train.max_iters={settings.iters}"]
    else:
        out += [f"train.max_minutes={settings.minutes}"]
    if uses_precomputed(base.model.proposals) and not _is_default_data(settings.data_root):
        # the configs' shared cache holds data/shapes' proposals: another dataset would overwrite them
        out.append(f"model.proposals.cache_dir={settings.output_dir / 'proposals'}")
    return list(own) + out + list(settings.overrides)


def _is_default_data(root: Path) -> bool:
    return Path(root).resolve() == DEFAULT_DATA.resolve()


def data_overrides(cfg: Config, root: Path) -> list[str]:
    overrides = DATA_OVERRIDES.get(cfg.data.format)
    if overrides is None:
        raise ValueError(f"data.format '{cfg.data.format}': the zoo's shapes data comes as "
                         f"{' or '.join(DATA_OVERRIDES)}")
    return [item for split in SPLITS for item in overrides(root, split)]


# data.format -> the keys pointing one split at the shapes data under root
DATA_OVERRIDES = {
    "voc": lambda root, split: [f"data.{split}.root={root / 'voc'}"],
    "coco": lambda root, split: [f"data.{split}.ann_file={root / 'annotations' / f'instances_{split}.json'}",
                                 f"data.{split}.img_dir={root / split}"],
}


def size_overrides(cfg: Config, size: int | None) -> list[str]:
    if size is None:
        return []
    if cfg.data.fixed_size is not None:
        return [f"data.fixed_size=[{size},{size}]"]
    longest = size * 5 // 3  # the shapes configs' shortest / longest side ratio (192 / 320)
    return [f"data.min_size_train=[{size}]", f"data.max_size_train={longest}",
            f"data.min_size_test={size}", f"data.max_size_test={longest}"]


def build_proposal_cache(cfg: Config, settings: ZooSettings, log) -> float | None:
    """Seconds to build the selective search cache of both splits before training (0.0: it was there);
    None for models without precomputed proposals."""
    prop = cfg.model.proposals
    if not uses_precomputed(prop):
        return None
    cache_dir = prop.cache_dir or str(settings.output_dir / "proposals")
    log(f"[zoo] {cfg.model.arch}: selective search proposals (cache {cache_dir})")
    start = time.perf_counter()
    for split in SPLITS:
        proposals_for(prop, build_dataset(cfg.data, split, train=False), split, cache_dir, progress=False)
    return time.perf_counter() - start


def train(config: str, overrides: list[str], run_dir: Path, threads: int | None = None) -> None:
    """tools/train.py in its own process: the runs do not share threads, memory or global state."""
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the zoo's own folder; a stale last.pt would be resumed into
    run_dir.mkdir(parents=True)
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), str(REPO / config), "--output-dir", str(run_dir),
           *overrides]
    log_path = run_dir / "train.log"
    with open(log_path, "w") as log_file:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
        result = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise ZooError(f"tools/train.py exited with {result.returncode} ({' | '.join(tail)}); see {log_path}")


def measure_run(entry: ZooEntry, run_dir: Path, settings: ZooSettings) -> dict:
    """Metrics of the run's final evaluation, its training time, and speed and size of its last.pt."""
    checkpoint = run_dir / "last.pt"
    cfg = load_config(run_dir / "config.yaml")
    model, cfg = load_trained_model(cfg, checkpoint, torch.device("cpu"))
    dataset = wrap_with_proposals(cfg, build_dataset(cfg.data, "val", train=False), "val", progress=False)
    count = min(settings.images, len(dataset))
    batches = [collate([dataset[i]]) for i in range(count)]
    infer_ms = time_inference(model, batches, settings.warmup)
    proposal_ms = None
    if uses_precomputed(cfg.model.proposals):
        proposal_ms = selective_search_ms(cfg, [dataset.get_image_info(i)[0] for i in range(count)])[0]
    summary = summarize(model, batches[0])
    train_seconds, train_iters = logged_steps(run_dir / "metrics.jsonl")
    return {
        "arch": entry.key, "title": entry.title, "config": entry.config, "axis": entry.axis, **backbone_of(cfg),
        "note": entry.note, **read_metrics(run_dir / "metrics.json"),
        "train_minutes": train_seconds / 60, "train_iters": train_iters,
        "infer_ms": infer_ms, "proposal_ms": proposal_ms,
        "total_ms": infer_ms + (proposal_ms or 0.0),
        "params": summary.total_params, "gflops": summary.total_flops / 1e9,
        "input_size": list(batches[0].images.shape[-2:]),
    }


def logged_steps(log_path: Path) -> tuple[float, int]:
    """Seconds spent in training steps (data loading included) and their count, from the run's logged mean
    step times. Not the checkpoint's elapsed_s: last.pt is saved again after the final evaluation, which it
    includes."""
    total, previous = 0.0, 0
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "train":
            total += record["time"] * (record["iter"] - previous)
            previous = record["iter"]
    return total, previous


@torch.no_grad()
def time_inference(model, batches: list, warmup: int) -> float:
    """Mean ms per image over ``batches`` (one image each), after ``warmup`` untimed ones."""
    model.eval()
    for batch in (batches * warmup)[:warmup]:
        model(batch, mode="predict")
    start = time.perf_counter()
    for batch in batches:
        model(batch, mode="predict")
    return (time.perf_counter() - start) / len(batches) * 1000


def read_metrics(path: Path) -> dict:
    """Percent figures of the run's final evaluation: box AP and AP50, mask AP, or mIoU for FCN."""
    if not path.is_file():
        raise ZooError(f"{path} is missing: the run wrote no final evaluation")
    metrics = json.loads(path.read_text())
    bbox, segm, sem = metrics.get("bbox", {}), metrics.get("segm", {}), metrics.get("sem_seg", {})
    return {"ap": _finite(bbox.get("AP")), "ap50": _finite(bbox.get("AP50")), "mask_ap": _finite(segm.get("AP")),
            "miou": _finite(sem.get("mIoU"))}


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def backbone_of(cfg: Config) -> dict:
    b = cfg.model.backbone
    width = f" x{b.width:g}" if b.width != 1.0 else ""
    start = "scratch" if not b.weights else "pre-trained"
    maps = cfg.model.fcn.in_features if cfg.model.arch == "fcn" else b.out_features  # FCN reads only these
    neck = f" + {cfg.model.neck.name}" if cfg.model.neck.name != "none" else ""
    return {"backbone": f"{b.name}{width} ({b.norm}, {start})", "features": ", ".join(sorted(maps, key=_stride)) + neck}


def _stride(key: str) -> int:
    return int(key[1:]) if key[1:].isdigit() else 0


def mark_shared_backbone(rows: list[dict]) -> None:
    """``shared_backbone``: the row's backbone is the one most architectures use."""
    measured = [r for r in rows if "backbone" in r]
    if not measured:
        return
    common, _ = Counter(r["backbone"] for r in measured).most_common(1)[0]
    for row in measured:
        row["shared_backbone"] = row["backbone"] == common


def row_summary(row: dict) -> str:
    score = f"mIoU {row['miou']:.1f}" if row.get("miou") is not None else f"AP {row.get('ap') or 0:.1f}"
    return (f"{score}, {row['train_iters']} iterations in {row['train_minutes']:.1f} min, "
            f"{row['total_ms']:.0f} ms per image, {row['params'] / 1e6:.2f} M params, {row['gflops']:.2f} GFLOPs")

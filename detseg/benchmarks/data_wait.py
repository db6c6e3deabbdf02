"""How long training waits for data: a short real run of the Trainer on the shapes dataset, read back
from the data_time and time (whole iteration, data included) it logs to metrics.jsonl."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from detseg.config import load_config
from detseg.data.build import build_dataset
from detseg.engine.trainer import Trainer
from detseg.models.build import trains_on_masks
from detseg.app.pipeline import build_model_for, train_loader_factory

ROOT = Path(__file__).resolve().parents[2]
SHAPES = ROOT / "data/shapes"
CONFIGS = ("configs/faster_rcnn/shapes.yaml", "configs/ssd/shapes.yaml", "configs/mask_rcnn/shapes.yaml")


def ensure_shapes(root: Path = SHAPES) -> Path:
    if not (root / "annotations/instances_train.json").exists():
        subprocess.run([sys.executable, str(ROOT / "tools/make_dataset.py"), "shapes", "--output-dir", str(root)],
                       check=True)
    return root


def _overrides(data_root: Path, iterations: int, output_dir: str) -> list[str]:
    return [f"data.train.ann_file={data_root}/annotations/instances_train.json",
            f"data.train.img_dir={data_root}/train",
            "train.max_minutes=null", f"train.max_iters={iterations}", "train.log_period=1",
            "train.eval_period=0", "train.checkpoint_period=0", f"train.output_dir={output_dir}"]


def data_wait(config: str, iters: int = 30, warmup: int = 5, data_root: Path = SHAPES) -> dict:
    """Mean data wait and mean step time (ms) over ``iters`` logged iterations after ``warmup``."""
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = load_config(ROOT / config, _overrides(data_root, warmup + iters, run_dir))
        train_set = build_dataset(cfg.data, "train", train=True, with_masks=trains_on_masks(cfg.model))
        cfg.model.num_classes = cfg.model.num_classes or len(train_set.category_ids)
        model = build_model_for(cfg, train_set)
        Trainer(cfg, model, train_loader_factory(cfg, train_set), None, run_dir).train()
        records = [json.loads(line) for line in open(Path(run_dir) / "metrics.jsonl")]
    steps = [r for r in records if r.get("type") == "train"][warmup:]
    if not steps:
        raise RuntimeError(f"{config}: the trainer logged no iteration after the {warmup} warm-up ones")
    data_ms = statistics.fmean(r["data_time"] for r in steps) * 1000
    step_ms = statistics.fmean(r["time"] for r in steps) * 1000
    return {"config": config, "num_workers": cfg.data.num_workers, "batch_size": cfg.data.batch_size,
            "iters": len(steps), "data_ms": data_ms, "step_ms": step_ms, "fraction": data_ms / step_ms}


def data_wait_all(iters: int = 30, warmup: int = 5, data_root: Path = SHAPES) -> dict:
    root = ensure_shapes(Path(data_root))
    return {Path(c).parent.name: data_wait(c, iters, warmup, root) for c in CONFIGS}

"""The Trainer on a CUDA device: a short real run of the shapes Faster R-CNN with bf16 autocast and
channels_last, logged, checkpointed and evaluated (tools/gpu_check.sh runs it)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from detseg.app.training import run_training
from detseg.config import load_config
from tests.models.test_detector import TINY

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "faster_rcnn" / "shapes.yaml"


def test_trainer_runs_two_iterations_on_cuda_with_bf16_and_channels_last(shapes_paths, tmp_path):
    p = shapes_paths
    cfg = load_config(CONFIG, [*TINY, f"data.train.ann_file={p['train_json']}", f"data.train.img_dir={p['train_dir']}",
                               f"data.val.ann_file={p['val_json']}", f"data.val.img_dir={p['val_dir']}",
                               "data.num_workers=0", "train.device=cuda", "train.amp=bf16", "train.channels_last=true",
                               "train.max_minutes=null", "train.max_iters=2", "train.log_period=1",
                               f"train.output_dir={tmp_path}", "train.loggers=[]"])
    said = []
    metrics = run_training(cfg, say=said.append)
    assert any("on cuda, bfloat16" in line for line in said)
    steps = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    losses = [s["loss"] for s in steps if s.get("type") == "train"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert 0 <= metrics["bbox"]["AP"] <= 100
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
    assert state["iteration"] == 2

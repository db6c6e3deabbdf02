"""FCN through the command-line tools: train, eval (sem_seg block) and infer (overlay + palette PNG) agree."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detseg.data.datasets.shapes import CLASS_NAMES
from detseg.data.palette import read_label_png
from detseg.evaluation.sem_seg import confusion_metrics

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/fcn/shapes_8s.yaml"
TINY = ["model.backbone.width=0.25", "model.backbone.weights=null", "data.min_size_train=[96]", "data.max_size_train=128",
        "data.min_size_test=96", "data.max_size_test=128", "data.batch_size=4", "data.num_workers=0",
        "train.max_minutes=null", "train.max_iters=24", "solver.warmup_iters=5", "train.log_period=8",
        "train.checkpoint_period=24"]


def _run(*args):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args[0]}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def run(shapes_paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("fcn_run")
    voc = shapes_paths["voc_root"]
    data = [f"data.train.root={voc}", f"data.val.root={voc}"]
    _run("tools/train.py", CONFIG, "--output-dir", str(out), *TINY, *data)
    return out, [*TINY, *data], voc


def test_training_logs_falling_loss_and_sem_seg_eval(run):
    out, _, _ = run
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in logs if r["type"] == "train"]
    assert train[-1]["iter"] == 24 and train[-1]["loss_fcn_ce"] < train[0]["loss_fcn_ce"]
    evals = [r for r in logs if r["type"] == "eval"]
    assert evals and 0 < evals[-1]["sem_seg"]["mIoU"] <= 100 and (out / "best.pt").is_file()
    assert set(evals[-1]["val_loss"]) == {k for k in train[-1] if k.startswith("loss")}  # "both" mode
    # semantic runs draw the history plots; PR curves and the confusion matrix are detection-only
    assert {p.name for p in (out / "plots").glob("*.png")} == {"loss_curves.png", "learning_rate.png", "metrics.png"}


def test_eval_and_infer_agree(run, tmp_path):
    out, overrides, voc = run
    _run("tools/eval.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--output-dir", str(tmp_path / "eval"),
         *overrides)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["sem_seg"]
    ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    images = [str(voc / "JPEGImages" / f"{i}.jpg") for i in ids]
    _run("tools/infer.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--input", *images,
         "--output-dir", str(tmp_path / "infer"), *overrides)
    confusion = np.zeros((7, 7))
    for voc_id, image in zip(ids, images):
        predicted = read_label_png(tmp_path / "infer" / f"{voc_id}.png")
        truth = read_label_png(voc / "SegmentationClass" / f"{voc_id}.png")
        with Image.open(tmp_path / "infer" / f"{voc_id}.jpg") as overlay, Image.open(image) as source:
            assert overlay.size == source.size == predicted.shape[::-1]
        np.add.at(confusion, (truth.ravel(), predicted.ravel()), 1)
    recomputed = confusion_metrics(confusion, ["background", *CLASS_NAMES])
    assert recomputed["mIoU"] == pytest.approx(metrics["mIoU"], abs=1e-6)
    assert recomputed["pACC"] == pytest.approx(metrics["pACC"], abs=1e-6)
    records = json.loads((tmp_path / "infer" / "predictions.json").read_text())
    assert len(records) == len(ids) and all(set(r["pixels"]) <= set(CLASS_NAMES) for r in records)

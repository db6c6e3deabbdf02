"""Shared fixtures for the reliability tests: in-process tool runs and a tiny trained-shape checkpoint."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs/faster_rcnn/shapes.yaml")
# The shapes model shrunk to seconds per step on 1 CPU thread (as in tests/tools/test_end_to_end.py).
TINY = [
    "model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[128,128]",
    "data.min_size_train=[128]", "data.max_size_train=192", "data.min_size_test=128", "data.max_size_test=192",
    "data.batch_size=2", "data.num_workers=0", "train.max_minutes=null", "train.device=cpu",
    "solver.warmup_iters=2", "train.log_period=1",
]


@pytest.fixture
def run_tool(monkeypatch, capsys):
    """Run tools/NAME.py in this process: (exit code, stdout, stderr). An uncaught exception
    (a traceback for the user) propagates and fails the test."""
    monkeypatch.syspath_prepend(str(ROOT / "tools"))

    def run(name: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", [f"tools/{name}.py", *map(str, args)])
        capsys.readouterr()
        try:
            runpy.run_path(str(ROOT / "tools" / f"{name}.py"), run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def data_overrides(paths: dict) -> list[str]:
    return [f"data.train.ann_file={paths['train_json']}", f"data.train.img_dir={paths['train_dir']}",
            f"data.val.ann_file={paths['val_json']}", f"data.val.img_dir={paths['val_dir']}"]


@pytest.fixture(scope="session")
def tiny_checkpoint(shapes_paths, tmp_path_factory):
    """(checkpoint path, overrides) for an untrained tiny shapes model; enough for eval/infer."""
    from detseg.config import config_to_dict, load_config
    from detseg.data.datasets.coco import CocoDetection
    from detseg.utils.checkpoint import save_checkpoint
    from detseg.models.build import build_model

    overrides = [*TINY, *data_overrides(shapes_paths)]
    cfg = load_config(CONFIG, overrides)
    dataset = CocoDetection(shapes_paths["train_json"], shapes_paths["train_dir"])
    cfg.model.num_classes, cfg.model.class_names = len(dataset.category_ids), list(dataset.class_names)
    cfg.test.score_thresh = 0.0  # untrained: keep whatever it finds so drawing code runs too
    path = tmp_path_factory.mktemp("tiny_ckpt") / "model.pt"
    save_checkpoint(path, {"model": build_model(cfg.model).state_dict(), "iteration": 0,
                           "config": config_to_dict(cfg)})
    return path, overrides

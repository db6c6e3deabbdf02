"""tools/benchmark.py times one-stage configs, beside a baseline config and torchvision's SSD twin."""
import json
import runpy
import sys
from pathlib import Path

import pytest

from detseg.config import load_config
from detseg.models.build import build_model
from detseg.interop.torchvision_twin import torchvision_twin

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_reports_a_one_stage_model_beside_a_baseline(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    argv = ["tools/benchmark.py", "configs/ssd/shapes.yaml", "--input-size", "64", "--batch-size", "1", "--iters", "1",
            "--output", str(out), "--baseline", "configs/faster_rcnn/shapes.yaml"]
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    with pytest.raises(SystemExit) as exit_info:  # in-process: a subprocess would pay torch's import again
        runpy.run_path(str(ROOT / "tools/benchmark.py"), run_name="__main__")
    assert exit_info.value.code == 0
    stdout = capsys.readouterr().out
    figures = json.loads(out.read_text())
    for name in ("detseg", "baseline"):
        assert figures[name]["train_ips"] > 0 and figures[name]["infer_ips"] > 0
    assert figures["baseline"]["config"] == "configs/faster_rcnn/shapes.yaml"
    assert "vs baseline" in stdout and "torchvision has no equivalent" in stdout


def test_ssdlite_twin_is_torchvisions_model_of_the_same_size():
    cfg = load_config(ROOT / "configs/ssd/coco_ssdlite320_mobilenet_v3.yaml")
    twin = torchvision_twin(cfg.model, cfg.model.num_classes, 320)
    assert type(twin).__name__ == "SSD"
    ours = build_model(cfg.model)
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in ours.parameters())
    assert torchvision_twin(load_config(ROOT / "configs/ssd/shapes.yaml").model, 3, 256) is None

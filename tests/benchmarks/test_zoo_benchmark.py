"""tools/benchmark.py --zoo: every architecture trained, evaluated and measured into one table, plot and JSON."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detseg.benchmarks.zoo import ZooSettings, arch_overrides, mark_shared_backbone, run_zoo
from detseg.benchmarks.zoo_report import format_zoo_markdown

ROOT = Path(__file__).resolve().parents[2]
TITLES = ["Faster R-CNN", "SSD", "FCN-8s"]  # the zoo's table order, whatever order --archs gives


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory, shapes_root):
    out = tmp_path_factory.mktemp("zoo")
    cmd = [sys.executable, "tools/benchmark.py", "--zoo", "--archs", "fcn,ssd,faster_rcnn",
           "--backbones", "mnasnet1_0,resnet18", "--iters", "3",
           "--limit", "2", "--input-size", "64", "--data-root", str(shapes_root), "--output-dir", str(out),
           "--output", str(out / "copy.json"), "--threads", "1", "data.num_workers=0"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


def _tables(markdown: str) -> list[list[list[str]]]:
    """Each markdown table's body rows (header and rule dropped) as lists of cells."""
    tables, current = [], None
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current = [] if current is None else current
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current is not None:
            tables.append(current[2:])
            current = None
    return tables


def _table_rows(markdown: str) -> list[list[str]]:
    return _tables(markdown)[0]


def test_zoo_table_has_a_numeric_row_per_architecture(zoo_run):
    rows = _table_rows((zoo_run / "zoo.md").read_text())
    assert [r[0] for r in rows] == TITLES
    for row in rows:
        assert len(row) == 12
        ap, second, train, infer, _, params, gflops = row[4:11]
        numbers = [second, infer, params, gflops] + ([] if row[0] == "FCN-8s" else [ap])
        assert all(math.isfinite(float(n)) for n in numbers), row
        assert re.fullmatch(r"\d+\.\d \(3\)", train), train  # minutes (iterations)
        assert float(infer) > 0 and float(params) > 0 and float(gflops) > 0
    assert rows[2][4] == "—"  # FCN has no box AP: its mIoU is in the next column


def test_zoo_backbone_axis_is_faster_rcnn_with_each_backbone(zoo_run):
    from detseg.config import load_config

    tables = _tables((zoo_run / "zoo.md").read_text())
    assert len(tables) == 2
    assert [r[0] for r in tables[1]] == ["`resnet18 x0.5`", "`mnasnet1_0`"]  # the axis' order
    for row in tables[1]:
        assert len(row) == 8 and all(math.isfinite(float(n)) for n in row[1:3] + row[4:7]), row
    report = json.loads((zoo_run / "zoo.json").read_text())
    axis = [r for r in report["rows"] if r["axis"] == "backbone"]
    for row, (name, width) in zip(axis, [("resnet18", 0.5), ("mnasnet1_0", 1.0)]):
        cfg = load_config(zoo_run / "runs" / row["arch"] / "config.yaml")
        assert (cfg.model.arch, cfg.model.backbone.name, cfg.model.backbone.width) == ("faster_rcnn", name, width)
        assert row["train_iters"] == 3 and "shared_backbone" not in row
    # the axis' reference is the architecture table's own Faster R-CNN: same model, same size
    faster = next(r for r in report["rows"] if r["arch"] == "faster_rcnn")
    assert (axis[0]["params"], axis[0]["gflops"]) == (faster["params"], faster["gflops"])
    assert axis[1]["params"] != faster["params"]
    image = np.asarray(Image.open(zoo_run / "zoo_backbones.png").convert("L"))
    assert image.shape[0] > 200 and len(np.unique(image)) > 10


def test_zoo_json_is_finite_and_matches_the_runs(zoo_run):
    from detseg.config import load_config
    from detseg.models.build import build_model

    report = json.loads((zoo_run / "zoo.json").read_text())
    assert report == json.loads((zoo_run / "copy.json").read_text())
    assert report["threads"] == 1 and report["iters"] == 3 and all(math.isfinite(v) for v in report["load_average"])
    rows = {r["arch"]: r for r in report["rows"] if r["axis"] == "architecture"}
    assert list(rows) == ["faster_rcnn", "ssd", "fcn"]
    for arch, row in rows.items():
        numbers = [v for v in row.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        assert numbers and all(math.isfinite(v) for v in numbers), row
        assert row["train_iters"] == 3 and row["shared_backbone"] is True
        run = zoo_run / "runs" / arch
        cfg = load_config(run / "config.yaml")
        assert row["params"] == sum(p.numel() for p in build_model(cfg.model).parameters())
        metrics = json.loads((run / "metrics.json").read_text())
        logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        (steps,) = [r for r in logged if r["type"] == "train"]  # one log record: the run's end, iteration 3
        assert row["train_minutes"] == pytest.approx(steps["time"] * 3 / 60)  # step time, not the evaluation
        if arch == "fcn":
            assert row["ap"] is None and row["miou"] == metrics["sem_seg"]["mIoU"]
        else:
            assert row["ap"] == metrics["bbox"]["AP"] and row["ap50"] == metrics["bbox"]["AP50"]
    assert rows["ssd"]["input_size"] == [64, 64]  # --input-size reached the fixed-size models too


def test_zoo_plot_is_a_drawn_png(zoo_run):
    image = np.asarray(Image.open(zoo_run / "zoo.png").convert("L"))
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert len(np.unique(image)) > 10  # axes, points and labels, not a blank canvas


def test_zoo_overrides_point_the_config_at_the_data_and_budget(tmp_path):
    settings = ZooSettings(output_dir=tmp_path, minutes=1.5, data_root=tmp_path / "shapes", image_size=96,
                           overrides=["solver.lr=0.001"])
    fast = arch_overrides("configs/fast_rcnn/shapes.yaml", settings)
    assert f"data.val.img_dir={tmp_path / 'shapes' / 'val'}" in fast and "data.min_size_test=96" in fast
    assert "train.max_minutes=1.5" in fast and fast[-1] == "solver.lr=0.001"
    # other data than data/shapes must not rewrite the configs' shared proposal cache
    assert f"model.proposals.cache_dir={tmp_path / 'proposals'}" in fast
    fcn = arch_overrides("configs/fcn/shapes_8s.yaml", ZooSettings(output_dir=tmp_path, iters=3))
    assert "data.train.root=data/shapes/voc" in fcn and "train.max_iters=3" in fcn
    assert not any("cache_dir" in o for o in fcn)
    # the FCN config starts from a pre-trained backbone; the zoo trains every architecture from scratch
    assert "model.backbone.weights=null" in fcn and "model.backbone.weights=null" in fast
    with pytest.raises(ValueError, match="unknown architecture.*retinanet"):
        run_zoo(["retinanet"], settings)
    with pytest.raises(ValueError, match="unknown backbone.*resnet152.*choose from resnet18"):
        run_zoo([], settings, backbones=["resnet152"])


def test_zoo_markdown_marks_failures_and_a_different_backbone():
    base = {"config": "c.yaml", "features": "s8", "note": "n", "ap": 1.0, "ap50": 2.0, "miou": None,
            "train_minutes": 1.0, "train_iters": 5, "infer_ms": 3.0, "proposal_ms": None, "params": 10**6,
            "gflops": 0.5, "input_size": [64, 64], "total_ms": 3.0}
    rows = [{**base, "arch": a, "title": a.upper(), "backbone": b}
            for a, b in (("ssd", "resnet18"), ("yolo", "resnet18"), ("rcnn", "vgg16"))]
    rows.append({"arch": "fcn", "title": "FCN", "config": "f.yaml", "error": "tools/train.py exited with 1"})
    mark_shared_backbone(rows)
    assert [r.get("shared_backbone") for r in rows] == [True, True, False, None]
    rows.append({"arch": "backbone_googlenet", "title": "googlenet", "config": "c.yaml", "axis": "backbone",
                 "error": "out of memory | killed"})
    text = format_zoo_markdown({"data_root": "d", "iters": 5, "timed_images": 2, "threads": 1, "rows": rows})
    table, backbones = _tables(text)
    assert backbones == [["googlenet", "failed: out of memory / killed"] + [""] * 6]
    assert all(len(r) == 12 for r in table)
    assert table[2][2] == "vgg16 (differs)" and table[3][2].startswith("failed: tools/train.py exited")
    assert "Not on the shared backbone: RCNN." in text

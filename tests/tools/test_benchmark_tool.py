"""tools/benchmark.py runs detseg and torchvision's twin on the same inputs and reports both."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_reports_detseg_and_torchvision(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "tools/benchmark.py", "configs/faster_rcnn/coco_r50_fpn_1x.yaml", "--input-size", "64",
           "--batch-size", "1", "--iters", "1", "--output", str(out),
           "model.rpn.pre_nms_topk_test=50", "model.rpn.post_nms_topk_test=20"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for name in ("detseg", "torchvision"):
        assert figures[name]["train_ips"] > 0 and figures[name]["infer_ips"] > 0
    assert figures["ratio"]["train_ips"] == figures["detseg"]["train_ips"] / figures["torchvision"]["train_ips"]
    assert "torchvision" in result.stdout and "ratio" in result.stdout


def test_lineage_benchmark_times_the_four_region_models_on_the_same_images(tmp_path, shapes_paths):
    from detseg.config import load_config
    from detseg.models.build import build_model

    out = tmp_path / "lineage.json"
    data = [f"data.val.ann_file={shapes_paths['val_json']}", f"data.val.img_dir={shapes_paths['val_dir']}",
            f"data.train.ann_file={shapes_paths['train_json']}", f"data.train.img_dir={shapes_paths['train_dir']}"]
    tiny = ["model.backbone.width=0.25", "model.rcnn.warp_size=32", "model.rcnn.context_padding=4",
            "data.min_size_test=96", "data.max_size_test=128"]
    cmd = [sys.executable, "tools/benchmark.py", "configs/fast_rcnn/shapes.yaml", "--lineage", "--limit", "1",
           "--proposals", "40", "--iters", "1", "--rcnn-warp", "40", "--output", str(out), *tiny, *data]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {r["arch"]: r for r in report["models"]}
    assert list(rows) == ["rcnn", "sppnet", "fast_rcnn", "faster_rcnn"]
    assert report["images"] == 1 and report["proposals_per_image"] == 40 and report["rcnn_warp"] == 40
    for arch, row in rows.items():
        cfg = load_config(ROOT / "configs" / arch / "shapes.yaml", tiny)
        assert row["params"] == sum(p.numel() for p in build_model(cfg.model, 6).parameters()), arch
        assert 0 < row["conv_ms"] < row["model_ms"] <= row["total_ms"]
        for key in ("conv_ms", "model_ms", "total_ms"):
            assert report["speedup_vs_rcnn"][arch][key] == rows["rcnn"][key] / row[key]
    # selective search is part of the end-to-end time of the three models that read proposals
    for arch in ("rcnn", "sppnet", "fast_rcnn"):
        assert rows[arch]["total_ms"] == rows[arch]["model_ms"] + report["selective_search_ms"]
    assert rows["faster_rcnn"]["total_ms"] == rows["faster_rcnn"]["model_ms"]
    assert "speed-up vs R-CNN" in result.stdout


def test_rcnn_warp_keeps_the_papers_context_proportion():
    from detseg.config import load_config
    from detseg.benchmarks.lineage import set_rcnn_warp

    cfg = load_config(ROOT / "configs" / "rcnn" / "shapes.yaml")
    set_rcnn_warp(cfg, 227)
    assert (cfg.model.rcnn.warp_size, cfg.model.rcnn.context_padding) == (227, 16)
    set_rcnn_warp(cfg, 64)
    assert (cfg.model.rcnn.warp_size, cfg.model.rcnn.context_padding) == (64, 5)
    with pytest.raises(ValueError, match="--rcnn-warp"):
        set_rcnn_warp(cfg, 4)


def test_mask_rcnn_twin_is_the_same_model_in_torchvision():
    from detseg.config import load_config
    from detseg.models.build import build_model
    from detseg.interop.torchvision_twin import torchvision_twin

    cfg = load_config(ROOT / "configs/mask_rcnn/coco_r50_fpn_1x.yaml", ["model.backbone.weights=null"])
    twin = torchvision_twin(cfg.model, 90, 320)
    assert type(twin).__name__ == "MaskRCNN"
    count = sum(p.numel() for p in build_model(cfg.model).parameters())
    assert sum(p.numel() for p in twin.parameters()) == count == 44_401_393


def test_fcn_twin_and_synthetic_semantic_targets():
    import torch

    from detseg.benchmarks.throughput import synthetic_images, to_batch
    from detseg.config import load_config
    from detseg.models.build import build_model
    from detseg.interop.torchvision_twin import torchvision_twin

    cfg = load_config(ROOT / "configs/fcn/coco_r50.yaml", ["model.backbone.weights=null"])
    twin = torchvision_twin(cfg.model, 20, 320)
    count = sum(p.numel() for p in build_model(cfg.model).parameters())
    assert sum(p.numel() for p in twin.parameters()) == count == 35_322_218
    images, targets = synthetic_images(3, 64)
    batch = to_batch(images, targets)
    assert batch.sem_seg.shape == (3, 64, 64)
    for sem, target in zip(batch.sem_seg, targets):
        x1, y1, x2, y2 = target["boxes"][-1].tolist()  # the last box is painted on top
        inside = sem[int(y1) + 1:int(y2) - 1, int(x1) + 1:int(x2) - 1]
        assert torch.all(inside == target["labels"][-1])
        assert set(sem.unique().tolist()) <= {0, *target["labels"].tolist()}


@pytest.mark.parametrize("config", ["faster_rcnn/coco_r50_fpn_1x.yaml", "mask_rcnn/coco_r50_fpn_1x.yaml",
                                    "ssd/coco_ssd300_vgg16.yaml", "ssd/coco_ssdlite320_mobilenet_v3.yaml",
                                    "fcn/coco_r50.yaml"])
def test_twin_trains_the_parameters_detseg_trains(config):
    """A step's cost depends on which layers get gradients: the twin freezes what the config freezes
    (torchvision's SSD300 without backbone weights trains its first VGG stage, which the config freezes)."""
    from detseg.config import load_config
    from detseg.models.build import build_model
    from detseg.interop.torchvision_twin import torchvision_twin

    cfg = load_config(ROOT / "configs" / config, ["model.backbone.weights=null"])
    ours, twin = build_model(cfg.model), torchvision_twin(cfg.model, cfg.model.num_classes, 320)

    def counts(model):
        return (sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters()))

    assert counts(twin) == counts(ours)
    assert (counts(ours)[0] < counts(ours)[1]) == (cfg.model.backbone.freeze_at > 0)

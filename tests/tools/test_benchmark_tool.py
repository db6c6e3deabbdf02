"""tools/benchmark.py runs detseg and torchvision's twin on the same inputs and reports both."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_reports_detseg_and_torchvision(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "tools/benchmark.py", "configs/faster_rcnn/coco_r50_fpn_1x.yaml", "--size", "64",
           "--batch-size", "1", "--iters", "1", "--json", str(out),
           "model.rpn.pre_nms_topk_test=50", "model.rpn.post_nms_topk_test=20"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for name in ("detseg", "torchvision"):
        assert figures[name]["train_ips"] > 0 and figures[name]["infer_ips"] > 0
    assert figures["ratio"]["train_ips"] == figures["detseg"]["train_ips"] / figures["torchvision"]["train_ips"]
    assert "torchvision" in result.stdout and "ratio" in result.stdout

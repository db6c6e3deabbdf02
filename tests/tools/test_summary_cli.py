"""tools/summary.py end to end: a config's whole model, a named network, --output, and clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from detseg.config import load_config
from detseg.models.build import build_model

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    from detseg.cli import summary

    return summary


def test_config_summary_totals_equal_the_models_parameters(tmp_path):
    out = tmp_path / "summary.json"
    cmd = [sys.executable, "tools/summary.py", "configs/faster_rcnn/shapes.yaml", "--input-size", "128", "96",
           "--output", str(out)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    cfg = load_config(ROOT / "configs/faster_rcnn/shapes.yaml", ["model.backbone.weights=null"])
    expected = sum(p.numel() for p in build_model(cfg.model, 80).parameters())
    report = json.loads(out.read_text())
    assert report["total_params"] == report["trainable_params"] == expected
    assert sum(r["params"] for r in report["rows"]) == expected
    assert f"total params      {expected:>15,}" in result.stdout
    assert report["input_shape"] == [1, 3, 128, 96]
    assert report["total_flops"] == sum(r["flops"] for r in report["rows"]) > 0
    features = {f["name"]: f for f in report["features"]}
    assert features["s32"]["stride"] == features["s32"]["rf_stride"] == 32
    assert features["s32"]["shape"] == [1, 256, 4, 3]  # the config's half-width ResNet-18
    lateral = next(r for r in report["rows"] if r["name"] == "neck.fpn.inner_blocks.0.0")  # 1x1 on s8
    assert (lateral["output"], lateral["receptive_field"], lateral["stride"]) == ([1, 64, 16, 12], 99, 8)


def test_named_network_table_shows_where_alexnets_parameters_are(capsys, tmp_path):
    assert _tool().main(["--backbone", "alexnet_v1", "--with-classifier", "--output", str(tmp_path / "a.json")]) == 0
    text = capsys.readouterr().out
    assert "input 1x3x227x227" in text and "total params           60,965,224" in text
    fc6 = next(line for line in text.splitlines() if line.startswith("classifier.1 "))
    assert "37,752,832" in fc6 and " 61.9 " in fc6  # fc6 alone holds 62% of the parameters
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["model"] == "alexnet_v1" and report["total_params"] == 60_965_224


def _table(lines: list[str], first: str) -> list[list[str]]:
    """The split lines of the block that starts after the line beginning with ``first``, up to a blank line."""
    start = next(i for i, line in enumerate(lines) if line.startswith(first)) + 1
    return [line.split() for line in lines[start:lines.index("", start)]]


def test_depth_groups_rows(capsys):
    assert _tool().main(["--backbone", "resnet50", "--with-classifier", "--depth", "1"]) == 0
    rows = _table(capsys.readouterr().out.splitlines(), "---")
    assert [r[0] for r in rows] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                    "avgpool", "fc"]
    assert rows[7][1:3] == ["Sequential", "1x2048x7x7"] and rows[7][-2:] == ["32", "427"]


def test_backbone_outputs_are_printed(capsys):
    assert _tool().main(["--backbone", "vgg16", "--input-size", "64", "64"]) == 0
    features = _table(capsys.readouterr().out.splitlines(), "key ")
    assert features == [["s4", "256", "4", "40", "1x256x16x16"], ["s8", "512", "8", "92", "1x512x8x8"],
                        ["s16", "512", "16", "196", "1x512x4x4"], ["s32", "512", "32", "212", "1x512x2x2"]]


@pytest.mark.parametrize("args, message", [
    ([], "either a CONFIG or --backbone"),
    (["--backbone", "resnet50", "model.backbone.width=0.5"], "takes no CONFIG or key=value overrides"),
    (["configs/faster_rcnn/shapes.yaml", "--with-classifier"], "goes with --backbone"),
])
def test_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _tool().main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--backbone", "resnet05"], "did you mean resnet50"),
    (["configs/faster_rcnn/shapes.yaml", "model.backbone.widht=0.5"], "width"),
])
def test_unknown_names_and_keys_are_one_clear_line(args, message, monkeypatch, capsys):
    tool = _tool()
    monkeypatch.setattr(sys, "argv", ["summary.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        tool.run_main(tool.main)  # as `python tools/summary.py ARGS` runs it
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error:") and len(err.splitlines()) == 1
    assert message in err

"""detseg export --check-val: PyTorch and the exported graph evaluated on the val split by the same loop
and evaluators, their AP difference judged; --precision int8 / fp16 beside fp32."""
import math

import pytest
import torch
from export_helpers import CLASSES, TWO_STAGE_TINY, save_tiny_checkpoint, tiny_model

from detseg.app.evaluate import evaluate
from detseg.app.inference import run_inference
from detseg.app.loaders import eval_loader
from detseg.cli import export as export_cli
from detseg.data.build import build_dataset
from detseg.export.onnx_export import TOLERANCES, _compare_detections, export_onnx
from detseg.export.val_check import OnnxModel, ValResult, drift_errors

CONFIG = "configs/faster_rcnn/shapes.yaml"


@pytest.fixture
def val_overrides(shapes_paths):
    """The tiny model on the shapes fixture, scoring low so that random weights still detect."""
    return [*TWO_STAGE_TINY, "test.score_thresh=0.001", f"data.val.ann_file={shapes_paths['val_json']}",
            f"data.val.img_dir={shapes_paths['val_dir']}", f"data.train.ann_file={shapes_paths['train_json']}",
            f"data.train.img_dir={shapes_paths['train_dir']}"]


def _export(tmp_path, overrides, *flags):
    cfg, model = tiny_model(CONFIG, overrides)
    ckpt = save_tiny_checkpoint(tmp_path / "model.pt", cfg, model)
    return export_cli.main([CONFIG, "--checkpoint", str(ckpt), "--output", str(tmp_path / "model.onnx"),
                            *flags, *overrides])


def _error_lines(stderr: str) -> list[str]:
    """What the tool said went wrong (stderr also carries the evaluation's progress bars): no traceback."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_graph_predicts_and_scores_as_pytorch_in_the_evaluation_loop(tmp_path, val_overrides):
    cfg, model = tiny_model(CONFIG, val_overrides)
    model.roi_heads.score_thresh = cfg.test.score_thresh
    path = export_onnx(model, "faster_rcnn", tmp_path / "m.onnx", (128, 128), True, {"class_names": CLASSES})
    dataset = build_dataset(cfg.data, "val", train=False)
    loader, cpu = eval_loader(cfg, dataset), torch.device("cpu")
    # a random model's AP is 0 on both sides: the predictions themselves are what must agree
    for (_, expected), (_, got) in zip(run_inference(model, loader, cpu), run_inference(OnnxModel(path), loader, cpu)):
        diff = _compare_detections(expected[0], got[0])  # in the original image; raises on another count
        assert diff["detections"] > 0 and diff["labels"] == 0, diff
        assert diff["boxes"] <= TOLERANCES["boxes"] and diff["scores"] <= TOLERANCES["scores"], diff
    expected = evaluate(model, dataset, cfg, cpu)["bbox"]
    got = evaluate(OnnxModel(path), dataset, cfg, cpu)["bbox"]
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        assert math.isclose(got[name], value, abs_tol=0.01) or math.isnan(value) and math.isnan(got[name]), name


def test_check_val_prints_both_aps_and_no_drift(tmp_path, val_overrides, capsys):
    assert _export(tmp_path, val_overrides, "--check-val") == 0
    out = capsys.readouterr().out
    assert "  pytorch    bbox AP " in out and "ms/image" in out
    assert "  onnx fp32  bbox AP " in out and "(+0.00)" in out


def test_drift_above_the_limit_is_one_error_line(tmp_path, val_overrides, capsys, monkeypatch):
    def drifted(cfg, model, graphs):
        results = real(cfg, model, graphs)
        for result in results[1:]:
            result.metrics["bbox AP"] += 0.75
        return results

    real = export_cli.val_check
    monkeypatch.setattr(export_cli, "val_check", drifted)
    assert _export(tmp_path, val_overrides, "--check-val") == 1
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1
    assert err[0].startswith("error: onnx fp32 bbox AP differs from PyTorch's by +0.75 (more than --max-drift 0.5)")
    assert _export(tmp_path, val_overrides, "--check-val", "--allow-drift", "--overwrite") == 0
    assert _export(tmp_path, val_overrides, "--check-val", "--max-drift", "1", "--overwrite") == 0


def test_drift_errors_name_each_metric_over_the_limit():
    results = [ValResult("pytorch", {"bbox AP": 40.0, "segm AP": float("nan")}, 1.0),
               ValResult("onnx fp32", {"bbox AP": 40.1, "segm AP": float("nan")}, 1.0),
               ValResult("onnx int8", {"bbox AP": 38.0, "segm AP": 1.0}, 1.0)]
    assert drift_errors(results, 0.5) == ["onnx int8 bbox AP differs from PyTorch's by -2.00 (more than "
                                          "--max-drift 0.5)"]
    assert drift_errors(results, 2.5) == []


def test_int8_graph_is_written_and_its_ap_reported(tmp_path, val_overrides, capsys):
    assert _export(tmp_path, val_overrides, "--precision", "int8", "--allow-drift") == 0
    out = capsys.readouterr().out
    assert (tmp_path / "model.int8.onnx").is_file() and f"wrote {tmp_path / 'model.int8.onnx'}" in out
    assert "  onnx fp32  bbox AP " in out and "  onnx int8  bbox AP " in out  # --precision implies --check-val


def test_fp16_is_a_graph_or_one_line_saying_why_not(tmp_path, val_overrides, capsys):
    code = _export(tmp_path, val_overrides, "--precision", "fp16", "--allow-drift")
    captured = capsys.readouterr()
    if (tmp_path / "model.fp16.onnx").is_file():  # an onnxruntime whose float16 conversion handles the graph
        assert code == 0 and "  onnx fp16  bbox AP " in captured.out
        return
    err = _error_lines(captured.err)
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: fp16: onnxruntime's CPU provider cannot run this graph in fp16 (")
    assert "  onnx fp32  bbox AP " in captured.out  # the fp32 graph is still judged

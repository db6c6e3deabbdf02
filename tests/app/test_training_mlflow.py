"""``detseg train`` with train.loggers: [tensorboard, mlflow]: the run is mirrored to a local MLflow store."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra (pip install 'detseg[mlflow]') is not installed")

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64,64]",
        "data.min_size_train=[96]", "data.max_size_train=128", "data.min_size_test=96", "data.max_size_test=128",
        "data.batch_size=2", "data.num_workers=0", "train.max_minutes=null", "train.max_iters=4",
        "train.log_period=2", "train.device=cpu", "train.loggers=[tensorboard,mlflow]",
        "train.mlflow_experiment=tiny"]


def test_training_logs_params_metrics_and_artifacts_to_mlflow(shapes_paths, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read the store back here, as `mlflow ui` would
    data = [f"data.train.ann_file={shapes_paths['train_json']}", f"data.train.img_dir={shapes_paths['train_dir']}",
            f"data.val.ann_file={shapes_paths['val_json']}", f"data.val.img_dir={shapes_paths['val_dir']}"]
    run_dir = tmp_path / "runs" / "tiny"
    result = subprocess.run([sys.executable, "tools/train.py", "configs/faster_rcnn/shapes.yaml", "--output-dir",
                             str(run_dir), *TINY, *data], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    store = (tmp_path / "runs" / "mlruns").as_uri()  # the default: beside the run folder
    assert f"in {store}" in result.stdout
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("tiny")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert run.data.params["train.max_iters"] == "4" and run.data.params["model.arch"] == "faster_rcnn"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4]
    assert "eval/bbox/AP" in run.data.metrics  # the evaluation at the end, beside the training losses
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "last.pt", "metrics.jsonl", "plots"} <= artifacts
    assert any((run_dir / "tb").glob("events.out.tfevents.*"))  # TensorBoard still written

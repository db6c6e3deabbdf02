"""detseg.reports.mlflow_run against a real MLflow file store (the mlflow extra; no server, no network)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from detseg.reports.mlflow_run import MlflowRun, flat_params, tracking_uri

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra (pip install 'detseg[mlflow]') is not installed")


def _run_folder(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / "mine"
    (run_dir / "plots").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("solver:\n  lr: 0.02\n")
    (run_dir / "last.pt").write_bytes(b"weights")
    (run_dir / "plots" / "loss_curves.png").write_bytes(b"png")
    return run_dir


def test_a_run_is_created_and_read_back(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = _run_folder(tmp_path)
    run = MlflowRun(run_dir, {"solver": {"lr": 0.02, "steps": [3, 4]}, "train": {"amp": "auto"}})
    assert run.uri == (tmp_path / "runs" / "mlruns").as_uri()  # beside the run folder
    run.log_metrics({"loss": 1.5, "lr": 0.02}, step=10, prefix="train")
    run.log_metrics({"loss": 1.0, "bad": float("nan")}, step=20, prefix="train")
    run.log_metrics({"bbox/AP": 41.5}, step=20, prefix="eval")
    run.close()  # the trainer's close leaves the run open for the artifacts
    assert run.finish() == ["config.yaml", "last.pt", "plots"]

    client = mlflow.MlflowClient(tracking_uri=run.uri)
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED" and stored.info.run_name == "mine"
    assert stored.data.params == {"solver.lr": "0.02", "solver.steps": "[3, 4]", "train.amp": "auto"}
    history = [(m.step, m.value) for m in client.get_metric_history(run.run_id, "train/loss")]
    assert sorted(history) == [(10, 1.5), (20, 1.0)]
    assert client.get_metric_history(run.run_id, "train/bad") == []  # NaN is not stored
    assert stored.data.metrics["eval/bbox/AP"] == 41.5
    artifacts = {a.path for a in client.list_artifacts(run.run_id)}
    assert artifacts == {"config.yaml", "last.pt", "plots"}
    assert [a.path for a in client.list_artifacts(run.run_id, "plots")] == ["plots/loss_curves.png"]
    assert client.get_experiment(stored.info.experiment_id).name == "detseg"


def test_a_failed_training_ends_the_run_as_failed(tmp_path):
    run = MlflowRun(_run_folder(tmp_path), {}, uri=(tmp_path / "store").as_uri(), experiment="mine")
    run.finish(succeeded=False)
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "store").as_uri())
    assert client.get_run(run.run_id).info.status == "FAILED"


def test_tracking_uri_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert tracking_uri("sqlite:///x.db", tmp_path / "a") == "sqlite:///x.db"
    assert tracking_uri(None, tmp_path / "a") == "http://tracker:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri(None, tmp_path / "a") == (tmp_path / "mlruns").as_uri()
    assert flat_params({"a": {"b": {"c": 1}}, "d": None}) == {"a.b.c": "1", "d": "None"}


def test_without_mlflow_installed_the_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(ValueError, match=r"^train.loggers names mlflow, but the mlflow package is not installed"):
        MlflowRun(tmp_path, {})

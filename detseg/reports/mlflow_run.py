"""A training run mirrored to MLflow (``train.loggers: [tensorboard, mlflow]``; the optional ``mlflow`` extra).

The run's resolved config goes in as parameters (flattened ``section.key``), every metrics.jsonl record
as metrics at its iteration, and once training is over the plots, config.yaml, metrics files and the
final checkpoints as artifacts. Without a tracking URI the store is a local folder, ``mlruns`` beside
the run folder, so nothing needs a server or a network. mlflow is imported only when a run is opened.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

# MLflow 3 keeps the file store but refuses it unless asked; a local folder is this logger's default
FILE_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"
ARTIFACTS = ("config.yaml", "metrics.json", "metrics.jsonl", "labels.json", "pr_curves.json",
             "confusion_matrix.json", "best.pt", "last.pt")


def tracking_uri(configured: str | None, run_dir: Path) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else a file store ``mlruns`` beside the run folder."""
    chosen = configured or os.environ.get("MLFLOW_TRACKING_URI")
    return chosen or (Path(run_dir).resolve().parent / "mlruns").as_uri()


def flat_params(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"solver": {"lr": 0.01}}`` -> ``{"solver.lr": "0.01"}`` (MLflow params are strings)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


class MlflowRun:
    """One MLflow run for one training run: a logger for the trainer's MetricsWriter, then ``finish``."""

    def __init__(self, run_dir: Path, config: dict[str, Any], uri: str | None = None, experiment: str = "detseg"):
        try:
            import mlflow
        except ImportError:
            raise ValueError("train.loggers names mlflow, but the mlflow package is not installed: "
                             "pip install 'detseg[mlflow]' (or mlflow-skinny)") from None
        self.mlflow, self.run_dir = mlflow, Path(run_dir)
        self.uri = tracking_uri(uri, self.run_dir)
        if self.uri.startswith("file:"):
            os.environ.setdefault(FILE_STORE_OPT_IN, "true")
        self.client = mlflow.MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(experiment_id, run_name=self.run_dir.name).info.run_id
        self._log_params(flat_params(config))

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), 100):  # the batch API takes at most 100 params a call
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, values: dict[str, float], step: int, prefix: str) -> None:
        from mlflow.entities import Metric

        stamp = int(1000 * time.time())
        metrics = [Metric(f"{prefix}/{key}", float(value), stamp, step)
                   for key, value in values.items() if math.isfinite(value)]  # MLflow stores no NaN
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        """The trainer is done writing numbers; the run stays open for ``finish``."""

    def finish(self, succeeded: bool = True) -> list[str]:
        """Upload the run folder's plots, config, metrics files and checkpoints; end the run. Returns
        the artifact paths."""
        uploaded = []
        for name in ARTIFACTS:
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
                uploaded.append(name)
        if (self.run_dir / "plots").is_dir():
            self.client.log_artifacts(self.run_id, str(self.run_dir / "plots"), "plots")
            uploaded.append("plots")
        self.client.set_terminated(self.run_id, "FINISHED" if succeeded else "FAILED")
        return uploaded

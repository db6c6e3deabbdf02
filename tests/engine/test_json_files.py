"""Metric files are JSON any reader accepts: a NaN or infinite value (AP of a class with no ground
truth, a diverged loss) is written as null, never as the non-standard NaN."""
from __future__ import annotations

import json
import math

import pytest

from detseg.engine.metrics import MetricsWriter
from detseg.reports.run import write_json
from detseg.utils.json_text import dumps


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_metrics_json_writes_nan_as_null(tmp_path):
    path = write_json(tmp_path, "metrics.json", {"bbox": {"AP": float("nan"), "AP50": 12.5, "AR": [1.0, math.inf]}})
    assert _strict(path.read_text()) == {"bbox": {"AP": None, "AP50": 12.5, "AR": [1.0, None]}}


def test_metrics_jsonl_records_are_strict_json(tmp_path):
    writer = MetricsWriter(tmp_path, enabled=True)
    writer.write({"type": "train", "iter": 1, "loss": float("inf")}, 1)
    writer.close()
    assert _strict((tmp_path / "metrics.jsonl").read_text().strip()) == {"type": "train", "iter": 1, "loss": None}


def test_dumps_refuses_what_it_cannot_make_finite():
    assert dumps({"a": (float("-inf"), 2)}) == '{"a": [null, 2]}'
    with pytest.raises(TypeError):
        dumps({"a": object()})


def test_the_training_log_shows_an_evaluation_as_one_readable_line():
    from detseg.engine.metrics import format_metrics_line

    metrics = {"bbox": {"AP": 39.53, "AP50": 79.81, "AP-cat": 12.0, "APs": float("nan")},
               "val_loss": {"loss": 0.8621, "loss_rpn_box": 0.0043}}
    assert format_metrics_line(metrics) == "bbox AP 39.5 AP50 79.8 APs nan | val_loss loss 0.8621 loss_rpn_box 0.0043"

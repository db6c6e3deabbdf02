"""A second training never overwrites a run by accident (tools/train.py --resume / --overwrite)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from detseg.engine.run_folder import prepare_run_folder

ROOT = Path(__file__).resolve().parents[2]


def _fake_run(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"last.pt": b"weights", "metrics.jsonl": b'{"type": "train", "iter": 2}\n', "config.yaml": b"model: {}\n",
             "notes.txt": b"the user's own"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path):
    files = _fake_run(tmp_path / "run")
    with pytest.raises(FileExistsError, match=r"already holds a run \(last.pt, metrics.jsonl, config.yaml\).*--resume.*"
                                              r"--overwrite"):
        prepare_run_folder(tmp_path / "run", resume=False, overwrite=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files
    assert prepare_run_folder(tmp_path / "run", resume=True, overwrite=False) == []
    assert prepare_run_folder(tmp_path / "empty", resume=False, overwrite=False) == []  # new or empty: fine


def test_overwrite_starts_clean_and_keeps_what_is_not_the_runs(tmp_path):
    _fake_run(tmp_path)
    assert prepare_run_folder(tmp_path, resume=False, overwrite=True) == ["last.pt", "metrics.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "notes.txt"]  # config.yaml is rewritten
    with pytest.raises(ValueError, match="pass one of them"):
        prepare_run_folder(tmp_path, resume=True, overwrite=True)


def test_train_tool_refuses_before_any_work(tmp_path):
    files = _fake_run(tmp_path / "run")
    result = subprocess.run([sys.executable, "tools/train.py", "configs/faster_rcnn/shapes.yaml", "--output-dir",
                             str(tmp_path / "run"), "data.train.ann_file=missing.json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "already holds a run" in result.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files

"""The GPU check (detseg benchmark --gpu-check, tools/gpu_check.sh): its dry run on the CPU, every step shrunk,
and how a failed, hung or late step is recorded while the others still run."""
from __future__ import annotations

import json
import math
import sys

import pytest

from detseg.benchmarks import gpu_check
from detseg.benchmarks.gpu import MODELS
from detseg.benchmarks.gpu_check import TARGETS, Step, read_junit, run_check
from detseg.cli.benchmark import main
from tests.benchmarks.report_numbers import numbers_in

STEPS = ("cuda_tests", "benchmark", "shapes_data", "shapes_training")


@pytest.mark.slow
def test_dry_run_runs_every_step_on_the_cpu_into_one_json(tmp_path, capsys):
    assert main(["--gpu-check", "--dry-run", "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    env = report["environment"]
    assert env["dry_run"] is True and env["torch"] and env["torchvision"] and env["cpu"] and env["device"]
    assert env["selective_search"] == "available" or env["selective_search"].startswith("unavailable: selective")
    assert tuple(report["steps"]) == STEPS
    assert all(step["status"] == "ok" and step["seconds"] <= step["limit_s"] for step in report["steps"].values())
    assert sum(step["seconds"] for step in report["steps"].values()) <= report["seconds"] <= report["budget_s"]
    tests = report["steps"]["cuda_tests"]
    assert tests["tests"] >= 4 and tests["failures"] == tests["errors"] == 0
    assert tests["passed"] + tests["skipped"] == tests["tests"]
    bench = report["steps"]["benchmark"]
    assert tuple(bench["models"]) == MODELS and bench["device"] == "cpu"
    for row in bench["models"].values():
        assert row["train_ratio"] == row["detseg"]["train_ips"] / row["torchvision"]["train_ips"]
    training = report["steps"]["shapes_training"]
    assert training["iterations"] == 2 and 0 <= training["AP"] <= 100
    assert set(report["targets"]) == set(TARGETS)
    for key, t in report["targets"].items():
        assert t["goal"] == TARGETS[key] and t["of_goal"] == t["value"] / t["goal"] and t["pass"] == (t["of_goal"] >= 1)
    assert all(math.isfinite(x) for x in numbers_in(report))
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.count("| faster_rcnn_r50_fpn |") == 3 and "bbox AP" in table
    assert "wrote " in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "logs").iterdir()} == {f"{s}.log" for s in STEPS}


def test_a_failed_hung_or_late_step_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    py = sys.executable
    written = tmp_path / "figures.json"
    fake = [Step("crash", [py, "-c", "raise SystemExit('boom')"], 20),
            Step("fine", [py, "-c", f"open({str(written)!r}, 'w').write('{{\"v\": 1}}')"], 20,
                 lambda out: json.loads(written.read_text())),
            Step("hang", [py, "-c", "import time; time.sleep(60)"], 3),
            Step("late", [py, "-c", "pass"], 20)]
    monkeypatch.setattr(gpu_check, "steps", lambda out, dry_run, batch_size: fake)
    report = run_check(tmp_path, dry_run=True, budget_s=7.5, say=lambda message: None)
    steps = report["steps"]
    assert steps["crash"]["status"] == "failed" and steps["crash"]["returncode"] == 1
    assert "boom" in steps["crash"]["log_tail"]
    assert steps["fine"]["status"] == "ok" and steps["fine"]["v"] == 1
    assert steps["hang"]["status"] == "timeout" and 3 <= steps["hang"]["seconds"] < 10
    assert steps["late"] == {"status": "skipped", "error": "no time left of the budget"}
    assert json.loads((tmp_path / "gpu_check.json").read_text())["steps"] == steps
    assert report["targets"] == {}


def test_junit_counts_and_names_the_failures(tmp_path):
    (tmp_path / "j.xml").write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="1" skipped="1">'
        '<testcase classname="a" name="ok"/><testcase classname="a" name="bad"><failure/></testcase>'
        '<testcase classname="b" name="broken"><error/></testcase>'
        '<testcase classname="b" name="later"><skipped/></testcase></testsuite></testsuites>')
    counts = read_junit(tmp_path / "j.xml")
    assert counts == {"tests": 4, "failures": 1, "errors": 1, "skipped": 1, "passed": 1,
                      "failed_tests": ["a::bad", "b::broken"]}


def test_cuda_test_files_are_the_marked_ones(tmp_path):
    (tmp_path / "tests/sub").mkdir(parents=True)
    (tmp_path / "tests/sub/test_a.py").write_text("import pytest\npytestmark = pytest.mark.cuda\n")
    (tmp_path / "tests/test_b.py").write_text("def test_b(): pass\n")
    assert gpu_check.cuda_test_files(tmp_path) == ["tests/sub/test_a.py"]
    (tmp_path / "tests/sub/test_a.py").unlink()
    with pytest.raises(FileNotFoundError, match="pytest.mark.cuda"):
        gpu_check.cuda_test_files(tmp_path)


def test_a_previous_checks_figures_are_not_read_as_this_ones(tmp_path, monkeypatch):
    (tmp_path / "old.json").write_text('{"v": 1}')
    fake = [Step("early_crash", [sys.executable, "-c", "raise SystemExit(3)"], 20,
                 lambda out: json.loads((out / "old.json").read_text()), "old.json")]
    monkeypatch.setattr(gpu_check, "steps", lambda out, dry_run, batch_size: fake)
    step = run_check(tmp_path, dry_run=True, say=lambda message: None)["steps"]["early_crash"]
    assert step["status"] == "failed" and step["returncode"] == 3 and "v" not in step
    assert step["error"].startswith("no figures:")


def test_the_environment_says_when_selective_search_is_unavailable(monkeypatch):
    import cv2

    assert gpu_check.environment(dry_run=True)["selective_search"] == "available"
    monkeypatch.delattr(cv2, "ximgproc", raising=False)
    status = gpu_check.environment(dry_run=True)["selective_search"]
    assert status.startswith("unavailable: selective search unavailable: needs opencv-contrib-python-headless")

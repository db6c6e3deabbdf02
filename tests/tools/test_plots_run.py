"""A few iterations of tools/train.py leave the plots, validation loss and per-class AP in the run folder;
tools/plot.py draws them again from the files."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/faster_rcnn/shapes.yaml"
QUICK = [
    "model.backbone.width=0.25", "model.neck.out_channels=16", "model.roi.head_fc_dims=[32,32]",
    "data.min_size_train=[96]", "data.max_size_train=128", "data.min_size_test=96", "data.max_size_test=128",
    "data.batch_size=2", "data.num_workers=0", "train.max_minutes=null", "train.max_iters=4",
    "solver.warmup_iters=2", "train.log_period=1", "train.eval_period=2", "train.checkpoint_period=0",
    "test.score_thresh=0.0",
]
RUN_PLOTS = {"loss_curves.png", "learning_rate.png", "metrics.png", "pr_curve.png", "confusion_matrix.png",
             "confusion_matrix_normalized.png", "labels_instances.png", "labels_box_sizes.png",
             "labels_aspect_ratio.png"}


def _run(*args):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, f"{args[0]}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def run(shapes_paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("plots_run")
    data = [f"data.train.ann_file={shapes_paths['train_json']}", f"data.train.img_dir={shapes_paths['train_dir']}",
            f"data.val.ann_file={shapes_paths['val_json']}", f"data.val.img_dir={shapes_paths['val_dir']}"]
    result = _run("tools/train.py", CONFIG, "--output-dir", str(out), *QUICK, *data)
    return out, result.stdout


def test_training_writes_every_plot(run):
    out, stdout = run
    assert {p.name for p in (out / "plots").glob("*.png")} == RUN_PLOTS
    for path in (out / "plots").glob("*.png"):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 300 and image.height >= 200, path.name
    assert "plots: " in stdout


def test_history_has_validation_loss_at_each_evaluation(run):
    out, _ = run
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["iter"] for r in evals] == [2, 4]
    train_terms = {k for k in train[-1] if k.startswith("loss")}
    for record in evals:
        val_loss = record["val_loss"]
        assert set(val_loss) == train_terms  # the total and every term the training logs
        assert val_loss["loss"] == pytest.approx(sum(v for k, v in val_loss.items() if k != "loss"))
        assert all(v >= 0 for v in val_loss.values())


def test_run_folder_holds_final_metrics_with_per_class_ap(run, shapes_paths):
    out, stdout = run
    metrics = json.loads((out / "metrics.json").read_text())
    last_eval = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert metrics["bbox"] == pytest.approx(last_eval["bbox"], nan_ok=True)
    names = [c["name"] for c in json.loads(Path(shapes_paths["train_json"]).read_text())["categories"]]
    assert {f"AP-{n}" for n in names} | {f"AP50-{n}" for n in names} <= set(metrics["bbox"])
    assert "category" in stdout and "AP50" in stdout  # the per-class table printed at the end
    confusion = json.loads((out / "confusion_matrix.json").read_text())
    val = json.loads(Path(shapes_paths["val_json"]).read_text())["annotations"]
    true_counts = [sum(row[k] for row in confusion["matrix"]) for k in range(len(names))]
    assert true_counts == [sum(a["category_id"] == c for a in val) for c in range(1, len(names) + 1)]


def test_label_statistics_count_the_training_boxes(run, shapes_paths):
    out, _ = run
    labels = json.loads((out / "labels.json").read_text())
    anns = json.loads(Path(shapes_paths["train_json"]).read_text())["annotations"]
    assert sum(labels["counts"]) == len(anns) == len(labels["boxes"]["width"])
    assert sorted(labels["boxes"]["width"]) == pytest.approx(sorted(a["bbox"][2] for a in anns), abs=0.01)


def test_plot_tool_redraws_a_finished_run(run, tmp_path):
    out, _ = run
    result = _run("tools/plot.py", str(out), "--output-dir", str(tmp_path))
    assert {p.name for p in tmp_path.glob("*.png")} == RUN_PLOTS
    assert "AP50" in result.stdout

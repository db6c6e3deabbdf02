"""Real photographs end to end: configs/faster_rcnn/custom.yaml on a BCCD subset (data/bccd, shipped),
given only the data, in VOC and in COCO form. It sizes itself from the data, learns, and the run's
derived sizes are what eval uses. The checker names BCCD's two genuinely bad boxes and nothing else.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from detseg.utils.cpu import describe_cpu

from detseg.data.check import check_voc

ROOT = Path(__file__).resolve().parents[2]
BCCD = ROOT / "data" / "bccd"
CUSTOM = "configs/faster_rcnn/custom.yaml"
NUM_TRAIN, NUM_VAL, ITERS = 40, 16, 240
# measured on this subset (fp32, 2026-12-06, 2-core AMD EPYC): AP 50.2, AP50 86.7, loss 1.86 -> 0.71 (mean of
# the first and last three logged values); the floor leaves room for the run-to-run spread of CPU kernels
AP50_FLOOR = 60.0
SHORT = ["train.max_minutes=null", "train.amp=false", "data.num_workers=0", "solver.warmup_iters=20",
         "train.log_period=10", "train.checkpoint_period=1000"]


def run_tool(*args, env=None):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def bccd_subset(tmp_path_factory) -> Path:
    """A VOC root whose images and xmls are BCCD's own (linked, never copied or edited), with small splits."""
    root = tmp_path_factory.mktemp("bccd_subset")
    for sub in ("Annotations", "JPEGImages"):
        (root / sub).symlink_to(BCCD / sub, target_is_directory=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for split, source, count in (("train", "trainval", NUM_TRAIN), ("val", "test", NUM_VAL)):
        ids = (BCCD / "ImageSets" / "Main" / f"{source}.txt").read_text().split()[:count]
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture(scope="module")
def voc_run(bccd_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bccd_run")
    data = [f"data.train.root={bccd_subset}", "data.train.split=train", f"data.val.root={bccd_subset}",
            "data.val.split=val"]
    result = run_tool("tools/train.py", CUSTOM, "--output-dir", str(out), f"train.max_iters={ITERS}", *SHORT, *data)
    return out, data, result.stdout


@pytest.mark.slow
def test_custom_config_sizes_itself_and_learns_on_real_photographs(voc_run):
    out, _, stdout = voc_run
    assert "auto input size" in stdout and "anchors [[" in stdout
    assert f"run {out}: train {NUM_TRAIN} images, val {NUM_VAL} images, 3 classes (Platelets, RBC, WBC); " \
           f"faster_rcnn on {describe_cpu()}, float32" in stdout  # the CPU's model and flags with the figures
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["data"]["min_size_test"] == 288 and stored["data"]["format"] == "voc"
    assert all(isinstance(level[0], float) for level in stored["model"]["rpn"]["anchor_sizes"])
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in logs if r["type"] == "train"]
    first, last = sum(r["loss"] for r in train[:3]) / 3, sum(r["loss"] for r in train[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    evals = [r for r in logs if r["type"] == "eval"]
    assert evals[-1]["bbox"]["AP50"] > AP50_FLOOR, evals[-1]["bbox"]
    assert evals[-1]["train_minutes"] > 0


@pytest.mark.slow
def test_eval_of_the_run_uses_its_derived_sizes(voc_run):
    out, data, _ = voc_run
    run_tool("tools/eval.py", CUSTOM, "--checkpoint", str(out / "last.pt"), "--output-dir", str(out / "eval"), *data,
             "train.amp=false")
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in logs if r["type"] == "eval"][-1]["bbox"]
    evaluated = json.loads((out / "eval" / "metrics.json").read_text())["bbox"]
    assert evaluated["AP"] == pytest.approx(trained["AP"], abs=0.05)


@pytest.mark.slow
def test_custom_config_trains_on_the_coco_form(bccd_subset, tmp_path):
    coco = tmp_path / "coco"
    run_tool("tools/convert_dataset.py", "--from", "voc", "--to", "coco", "--input", str(bccd_subset),
             "--output", str(coco), "--splits", "train", "val", "--image-mode", "link", "--skip-bad")
    out = tmp_path / "run"
    data = [f"data.train.ann_file={coco}/annotations/instances_train.json", f"data.train.img_dir={coco}/train",
            f"data.val.ann_file={coco}/annotations/instances_val.json", f"data.val.img_dir={coco}/val"]
    result = run_tool("tools/train.py", CUSTOM, "--output-dir", str(out), "train.max_iters=4", *SHORT, *data)
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["data"]["format"] == "coco" and stored["data"]["min_size_test"] == 288
    assert "bbox" in json.loads((out / "metrics.json").read_text()) and "auto input size" in result.stdout


def test_checker_names_only_the_genuinely_bad_boxes_of_bccd():
    trainval = check_voc(BCCD, "trainval")
    assert trainval.num_images == 292 and list(trainval.problems) == ["degenerate_box"]
    bad = trainval.problems["degenerate_box"]
    assert len(bad) == 2 and "BloodImage_00338.xml" in bad[0] and "BloodImage_00343.xml" in bad[1]
    test = check_voc(BCCD, "test")
    assert test.num_images == 72 and test.ok and not test.problems


@pytest.mark.slow
def test_eval_and_infer_take_the_run_folder_alone(voc_run, tmp_path):
    out, _, _ = voc_run
    run_tool("tools/eval.py", str(out), "--output-dir", str(tmp_path / "eval"), "train.amp=false")
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in logs if r["type"] == "eval"][-1]["bbox"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["bbox"]["AP"] == pytest.approx(
        trained["AP"], abs=0.05)  # best.pt is the last evaluated model here: the run evaluated once
    image = BCCD / "JPEGImages" / "BloodImage_00007.jpg"
    result = run_tool("tools/infer.py", str(out), "--input", str(image), "--output-dir", str(tmp_path / "pred"))
    records = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert "1 images written" in result.stdout and set(records[0]["class_names"]) <= {"Platelets", "RBC", "WBC"}

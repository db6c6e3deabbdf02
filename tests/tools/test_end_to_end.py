"""One short real training through the command-line tools: it learns, evaluates, infers.

The model is the shapes config shrunk (quarter-width ResNet-18, 128 px), trained on the 12
training images and evaluated on the same images, so learning shows within ~1 minute.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/faster_rcnn/shapes.yaml"
TINY = [
    "model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[128,128]",
    "data.min_size_train=[128]", "data.max_size_train=192", "data.min_size_test=128", "data.max_size_test=192",
    "data.batch_size=4", "data.num_workers=0", "train.max_minutes=null", "train.max_iters=150",
    "solver.warmup_iters=20", "train.log_period=10", "train.checkpoint_period=75",
]


def run_tool(*args, check=True):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def trained_run(shapes_paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e_run")
    data = [f"data.train.ann_file={shapes_paths['train_json']}", f"data.train.img_dir={shapes_paths['train_dir']}",
            f"data.val.ann_file={shapes_paths['train_json']}", f"data.val.img_dir={shapes_paths['train_dir']}"]
    run_tool("tools/train.py", CONFIG, "--output-dir", str(out), *TINY, *data)
    return out, [*TINY, *data]


@pytest.mark.slow
def test_training_learns(trained_run):
    out, _ = trained_run
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in logs if r.get("type") == "train"]
    assert train[-1]["iter"] == 150
    assert train[-1]["loss"] < 0.5 * train[0]["loss"], (train[0]["loss"], train[-1]["loss"])
    evals = [r for r in logs if r.get("type") == "eval"]
    assert evals and evals[-1]["bbox"]["AP50"] > 10.0, evals[-1]
    assert evals[-1]["val_loss"]["loss"] < train[0]["loss"]  # validated on the training images
    for name in ("last.pt", "config.yaml", "metrics.json", "plots/loss_curves.png", "plots/pr_curve.png"):
        assert (out / name).is_file()


@pytest.mark.slow
def test_eval_tool_matches_pycocotools(trained_run, shapes_paths):
    out, overrides = trained_run
    run_tool("tools/eval.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--output-dir", str(out / "eval"), *overrides)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())["bbox"]
    gt = COCO(str(shapes_paths["train_json"]))
    dt = gt.loadRes(str(out / "eval" / "predictions.json"))
    coco_eval = COCOeval(gt, dt, "bbox")
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    assert metrics["AP"] == pytest.approx(coco_eval.stats[0] * 100, abs=1e-9)
    assert metrics["AP50"] == pytest.approx(coco_eval.stats[1] * 100, abs=1e-9)
    # the PR curves are pycocotools' precision at IoU 0.5: their mean over classes and recall is AP50
    curves = json.loads((out / "eval" / "pr_curves.json").read_text())["bbox"]["precision"]
    per_class = [sum(c) / len(c) for c in curves.values()]
    assert sum(per_class) / len(per_class) * 100 == pytest.approx(metrics["AP50"], abs=1e-6)
    for name in ("pr_curve.png", "confusion_matrix.png", "confusion_matrix_normalized.png"):
        assert (out / "eval" / "plots" / name).stat().st_size > 0
    assert {d["category_id"] for d in dt.dataset["annotations"]} <= set(gt.getCatIds())


@pytest.mark.slow
def test_infer_tool_reports_bad_file_and_continues(trained_run, shapes_paths, tmp_path):
    out, overrides = trained_run
    bad = tmp_path / "inputs" / "notes.jpg"
    bad.parent.mkdir()
    bad.write_text("this is not an image")
    good = sorted(Path(shapes_paths["val_dir"]).glob("*.jpg"))[:2]
    result = run_tool("tools/infer.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--input", str(bad), *map(str, good),
                      "--output-dir", str(tmp_path / "pred"), "--score-threshold", "0.1", *overrides)
    assert "notes.jpg" in result.stderr
    records = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert [Path(r["file_name"]).name for r in records] == [g.name for g in good]
    assert all((tmp_path / "pred" / f"{g.stem}.jpg").stat().st_size > 0 for g in good)


@pytest.mark.slow
def test_predictor_returns_boxes_in_image_coordinates(trained_run, shapes_paths):
    from detseg.config import load_config
    from detseg.data.datasets.base import read_rgb
    from detseg.app.predictor import Predictor

    out, overrides = trained_run
    predictor = Predictor(load_config(ROOT / CONFIG, overrides), out / "last.pt")
    image = read_rgb(str(sorted(Path(shapes_paths["train_dir"]).glob("*.jpg"))[0]))
    instances = predictor(image)
    assert len(instances) > 0
    h, w = image.shape[:2]
    assert float(instances.boxes[:, [0, 2]].max()) <= w and float(instances.boxes[:, [1, 3]].max()) <= h
    assert instances.labels.max() < len(predictor.class_names)


def test_bad_config_key_is_one_line_error(tmp_path):
    result = run_tool("tools/train.py", CONFIG, "solver.lrr=0.1", "--output-dir", str(tmp_path), check=False)
    assert result.returncode == 2
    assert "solver.lrr" in result.stderr and "solver.lr" in result.stderr
    assert "Traceback" not in result.stderr


def _foreign_coco(shapes_paths, root: Path) -> Path:
    """The tiny shapes set made awkward: sparse category ids, crowd RLE, grayscale PNG, an empty image."""
    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils

    data = json.loads(Path(shapes_paths["train_json"]).read_text())
    id_map = {1: 3, 2: 7, 3: 11, 4: 42, 5: 56, 6: 90}
    for cat in data["categories"]:
        cat["id"] = id_map[cat["id"]]
    for ann in data["annotations"]:
        ann["category_id"] = id_map[ann["category_id"]]
    (root / "images").mkdir(parents=True)
    for k, img in enumerate(data["images"]):
        pixels = Image.open(Path(shapes_paths["train_dir"]) / img["file_name"])
        if k % 3 == 0:  # grayscale PNG
            img["file_name"] = Path(img["file_name"]).stem + ".png"
            pixels = pixels.convert("L")
        pixels.save(root / "images" / img["file_name"])
    first = data["images"][0]
    crowd = np.zeros((first["height"], first["width"]), np.uint8, order="F")
    crowd[:20, :40] = 1
    rle = mask_utils.encode(crowd)
    rle["counts"] = rle["counts"].decode()
    data["annotations"].append({"id": 10_000, "image_id": first["id"], "category_id": 42, "iscrowd": 1,
                                "bbox": [0, 0, 40, 20], "area": 800, "segmentation": rle})
    Image.new("RGB", (150, 120), (90, 120, 30)).save(root / "images" / "empty.jpg")
    data["images"].append({"id": 9999, "file_name": "empty.jpg", "height": 120, "width": 150})
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps(data))
    return ann_file


@pytest.mark.slow
def test_shapes_config_runs_on_foreign_coco_data(shapes_paths, tmp_path):
    ann_file = _foreign_coco(shapes_paths, tmp_path / "foreign")
    img_dir = tmp_path / "foreign" / "images"
    data = [f"data.train.ann_file={ann_file}", f"data.train.img_dir={img_dir}",
            f"data.val.ann_file={ann_file}", f"data.val.img_dir={img_dir}"]
    short = [o for o in TINY if not o.startswith("train.max_iters")] + ["train.max_iters=6"]
    run_tool("tools/train.py", CONFIG, "--output-dir", str(tmp_path / "run"), *short, *data)
    run_tool("tools/eval.py", CONFIG, "--checkpoint", str(tmp_path / "run" / "last.pt"),
             "--output-dir", str(tmp_path / "eval"), *short, *data)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["bbox"]
    assert set(metrics) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert {p["category_id"] for p in predictions} <= {3, 7, 11, 42, 56, 90}


@pytest.mark.slow
def test_voc_format_trains_and_reports_voc_map(shapes_paths, tmp_path):
    voc = shapes_paths["voc_root"]
    data = ["data.format=voc", f"data.train.root={voc}", "data.train.split=train",
            f"data.val.root={voc}", "data.val.split=val"]
    short = [o for o in TINY if not o.startswith("train.max_iters")] + ["train.max_iters=4"]
    run_tool("tools/train.py", CONFIG, "--output-dir", str(tmp_path / "run"), *short, *data)
    run_tool("tools/eval.py", CONFIG, "--checkpoint", str(tmp_path / "run" / "last.pt"),
             "--output-dir", str(tmp_path / "eval"), *short, *data)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"mAP", "mAP07"} <= set(metrics["voc"]) and "AP" in metrics["bbox"]
    assert 0.0 <= metrics["voc"]["mAP"] <= 100.0


@pytest.mark.slow
def test_mask_rcnn_trains_on_masks_and_reports_segm_beside_bbox(shapes_paths, tmp_path):
    data = [f"data.train.ann_file={shapes_paths['train_json']}", f"data.train.img_dir={shapes_paths['train_dir']}",
            f"data.val.ann_file={shapes_paths['val_json']}", f"data.val.img_dir={shapes_paths['val_dir']}"]
    short = [o for o in TINY if not o.startswith(("train.max_iters", "train.checkpoint_period"))]
    overrides = [*short, *data, "train.max_iters=4", "model.mask.conv_dims=[16,16]"]
    run_tool("tools/train.py", "configs/mask_rcnn/shapes.yaml", "--output-dir", str(tmp_path), *overrides)
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["loss_mask"] > 0 for r in logs if r["type"] == "train")
    run_tool("tools/eval.py", "configs/mask_rcnn/shapes.yaml", "--checkpoint", str(tmp_path / "last.pt"),
             "--output-dir", str(tmp_path / "eval"), *overrides, "test.score_thresh=0.0")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"bbox", "segm"} and set(metrics["segm"]) == set(metrics["bbox"])
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert predictions and all("segmentation" in p and "bbox" in p for p in predictions)
    # the segm numbers are pycocotools' own on the written predictions (masks as RLE)
    gt = COCO(str(shapes_paths["val_json"]))
    coco_eval = COCOeval(gt, gt.loadRes([{k: v for k, v in p.items() if k != "bbox"} for p in predictions]), "segm")
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    # (4 iterations score near 0; tests/evaluation checks non-trivial segm numbers against pycocotools)
    for name, value in zip(names, coco_eval.stats):
        assert metrics["segm"][name] == pytest.approx(value * 100, abs=1e-9), name


@pytest.mark.slow
def test_infer_says_when_the_threshold_hid_every_detection(trained_run, shapes_paths, tmp_path):
    out, overrides = trained_run
    images = sorted(Path(shapes_paths["val_dir"]).glob("*.jpg"))[:2]
    result = run_tool("tools/infer.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--input", *map(str, images),
                      "--output-dir", str(tmp_path / "pred"), "--score-threshold", "1.01", *overrides,
                      "test.score_thresh=0.0")  # the head keeps every candidate: each image has some
    assert "2 of 2 images show no detection because all of theirs scored below --score-threshold 1.01 (best " \
        in result.stdout, result.stdout
    records = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert all(r["boxes"] == [] and 0 < r["best_score_below_threshold"] <= 1 for r in records)


@pytest.mark.slow
def test_infer_on_a_folder_without_images_fails_with_one_line(trained_run, tmp_path):
    out, overrides = trained_run
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no pictures here")
    result = run_tool("tools/infer.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--input",
                      str(tmp_path / "empty"), "--output-dir", str(tmp_path / "pred"), *overrides, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: no images or videos found in {tmp_path / 'empty'}"
    assert not (tmp_path / "pred").exists()


@pytest.mark.slow
def test_checkpoint_of_another_architecture_is_one_line(trained_run, shapes_paths, tmp_path):
    out, _ = trained_run
    image = sorted(Path(shapes_paths["val_dir"]).glob("*.jpg"))[0]
    result = run_tool("tools/infer.py", "configs/ssd/shapes.yaml", "--checkpoint", str(out / "last.pt"), "--input",
                      str(image), "--output-dir", str(tmp_path / "pred"), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "state_dict" not in result.stderr
    message = result.stderr.strip()
    assert "\n" not in message, repr(message)
    assert "is a faster_rcnn on resnet18 x0.25 with 6 classes" in message
    assert "the config builds a ssd on resnet18 x0.5 with 6 classes" in message and "config.yaml" in message


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["train", "eval", "infer", "export", "browse"])
def test_an_output_folder_that_cannot_be_written_is_one_line_before_any_work(trained_run, shapes_paths, tmp_path,
                                                                              tool):
    out, overrides = trained_run
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder would go")  # root writes anywhere: make the path itself impossible
    target = str(blocker / "out")
    image = str(sorted(Path(shapes_paths["val_dir"]).glob("*.jpg"))[0])
    args = {"train": ["tools/train.py", CONFIG, "--output-dir", target, *overrides],
            "eval": ["tools/eval.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--output-dir", target, *overrides],
            "infer": ["tools/infer.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--input", image,
                      "--output-dir", target, *overrides],
            "export": ["tools/export.py", CONFIG, "--checkpoint", str(out / "last.pt"), "--output",
                       f"{target}/model.onnx", *overrides],
            "browse": ["tools/browse_dataset.py", CONFIG, "--output-dir", target, *overrides]}[tool]
    result = run_tool(*args, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write to ") and target in lines[0], lines


def test_detseg_debug_shows_the_traceback_that_the_one_line_error_hides():
    args = ["tools/train.py", CONFIG, "solver.lrr=0.1"]
    plain = run_tool(*args, check=False)
    assert plain.returncode == 2 and plain.stderr.strip().startswith("error: unknown config key 'solver.lrr'")
    assert "Traceback" not in plain.stderr
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DETSEG_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback (most recent call last)" in result.stderr
    assert "ConfigError: unknown config key 'solver.lrr'" in result.stderr

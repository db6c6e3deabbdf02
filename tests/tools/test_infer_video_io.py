"""tools/infer.py on videos, nested folders and with --save-txt, using a tiny random-weight Faster R-CNN."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/faster_rcnn/shapes.yaml"
TINY = ["model.backbone.width=0.25", "model.neck.out_channels=32", "model.roi.head_fc_dims=[64,64]",
        "data.min_size_test=96", "data.max_size_test=128", "train.device=cpu", "test.score_thresh=0.0",
        "model.num_classes=3", "model.class_names=[a,b,c]"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from detseg.config import config_to_dict, load_config
    from detseg.utils.checkpoint import save_checkpoint
    from detseg.models.build import build_model

    cfg = load_config(ROOT / CONFIG, TINY)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("infer_ckpt") / "model.pt"
    save_checkpoint(path, {"model": build_model(cfg.model).state_dict(), "iteration": 0, "config": config_to_dict(cfg)})
    return path


def _write_video(path: Path, codec: str, frames: int = 6, hw: tuple[int, int] = (96, 112), fps: float = 12.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (hw[1], hw[0]))
    assert writer.isOpened(), f"this OpenCV cannot write {codec}"
    rng = np.random.default_rng(0)
    for k in range(frames):
        frame = np.full((*hw, 3), 40 * k, np.uint8)
        cv2.rectangle(frame, (10 + 5 * k, 20), (60 + 5 * k, 70), tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
        writer.write(frame)
    writer.release()


def _video_facts(path: Path) -> tuple[int, tuple[int, int], float]:
    capture = cv2.VideoCapture(str(path))
    fps, count, shape = capture.get(cv2.CAP_PROP_FPS), 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape[:2]
    capture.release()
    return count, shape, fps


def _infer(checkpoint: Path, out: Path, *inputs, extra=()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/infer.py", CONFIG, "--checkpoint", str(checkpoint), "--input",
                           *map(str, inputs), "--output-dir", str(out), "--score-threshold", "0.0", *extra, *TINY],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def _txt_boxes(path: Path, hw: tuple[int, int]) -> tuple[np.ndarray, list[int], np.ndarray]:
    rows = [line.split() for line in path.read_text().splitlines()]
    assert all(len(r) == 6 for r in rows)
    values = np.array([[float(v) for v in r[1:]] for r in rows]).reshape(-1, 5)
    h, w = hw
    cx, cy, bw, bh = values[:, 0] * w, values[:, 1] * h, values[:, 2] * w, values[:, 3] * h
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return boxes, [int(r[0]) for r in rows], values[:, 4]


def _assert_txt_matches(record: dict, txt: Path, hw: tuple[int, int]) -> int:
    boxes, labels, scores = _txt_boxes(txt, hw)
    assert labels == record["labels"]
    # predictions.json rounds boxes to 0.01 px and scores to 1e-4; the text has 6 decimals of the side
    np.testing.assert_allclose(boxes, np.array(record["boxes"]).reshape(-1, 4), atol=0.005 + 1e-6 * max(hw))
    np.testing.assert_allclose(scores, record["scores"], atol=5e-5 + 1e-6)
    return len(labels)


def test_videos_folders_and_save_txt(checkpoint, tmp_path):
    src = tmp_path / "inputs"
    for sub in ("a", "b", "clips/nested"):
        (src / sub).mkdir(parents=True)
    image = np.random.default_rng(1).integers(0, 256, (80, 100, 3), dtype=np.uint8)
    cv2.imwrite(str(src / "a" / "x.jpg"), image)
    cv2.imwrite(str(src / "b" / "x.jpg"), image[:, ::-1])
    _write_video(src / "clips" / "clip.avi", "MJPG")
    _write_video(src / "clips" / "nested" / "clip.mp4", "mp4v", frames=5, hw=(64, 80), fps=10.0)
    out = tmp_path / "out"
    result = _infer(checkpoint, out, src, extra=["--save-txt"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 images and 2 videos written" in result.stdout

    # nested folders keep their sub-path: no collision between a/x.jpg and b/x.jpg
    assert (out / "a" / "x.jpg").stat().st_size > 0 and (out / "b" / "x.jpg").stat().st_size > 0
    for name, frames, hw, fps in (("clips/clip.avi", 6, (96, 112), 12.0), ("clips/nested/clip.mp4", 5, (64, 80), 10.0)):
        assert _video_facts(out / name) == (frames, hw, fps)
        assert f"{frames} frames at {fps:g} fps" in result.stdout and "frames/s processed" in result.stdout

    written = json.loads((out / "predictions.json").read_text())
    records = {Path(r["file_name"]).relative_to(src).as_posix(): r for r in written}
    assert set(records) == {"a/x.jpg", "b/x.jpg", "clips/clip.avi", "clips/nested/clip.mp4"}
    detections = 0
    for name in ("a/x", "b/x"):
        detections += _assert_txt_matches(records[f"{name}.jpg"], out / "labels" / f"{name}.txt", (80, 100))
    video = records["clips/clip.avi"]
    assert [f["frame"] for f in video["frames"]] == list(range(6)) and video["fps"] == 12.0
    for frame in video["frames"]:
        detections += _assert_txt_matches(frame, out / "labels" / "clips" / f"clip_{frame['frame']:06d}.txt", (96, 112))
    assert len(list((out / "labels" / "clips" / "nested").glob("clip_*.txt"))) == 5
    assert detections > 0, "the random model should keep some boxes at threshold 0"


def test_two_inputs_with_one_output_name_are_refused(checkpoint, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "x.jpg"), np.zeros((32, 32, 3), np.uint8))
    result = _infer(checkpoint, tmp_path / "out", tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg")
    assert result.returncode == 2 and "would both be written as 'x'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_video_opencv_cannot_open_is_one_line(checkpoint, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cv2.imwrite(str(tmp_path / "fine.jpg"), np.zeros((32, 32, 3), np.uint8))
    result = _infer(checkpoint, tmp_path / "out", broken, tmp_path / "fine.jpg")
    assert result.returncode == 0, result.stderr  # the other inputs are still done
    lines = result.stderr.replace("\r", "\n").splitlines()  # the progress bar redraws with \r
    messages = [line for line in lines if line.strip() and not line.startswith("infer:")]
    assert messages == [f"skipped {broken}: OpenCV cannot open this video"]
    assert "1 images written" in result.stdout and "1 skipped" in result.stdout
    only = _infer(checkpoint, tmp_path / "out2", broken)
    assert only.returncode == 1 and "Traceback" not in only.stderr  # nothing could be done


def test_predictions_carry_the_datasets_category_ids(checkpoint, tmp_path):
    cv2.imwrite(str(tmp_path / "x.jpg"), np.random.default_rng(1).integers(0, 256, (96, 112, 3), np.uint8))
    ids = [7, 3, 11]
    result = _infer(checkpoint, tmp_path / "out", tmp_path / "x.jpg", extra=[f"data.category_ids=[{','.join(map(str, ids))}]"])
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())[0]
    assert record["labels"], "the random model keeps boxes at threshold 0"
    assert record["category_ids"] == [ids[label] for label in record["labels"]]
    assert record["class_names"] == [["a", "b", "c"][label] for label in record["labels"]]
    plain = _infer(checkpoint, tmp_path / "out_plain", tmp_path / "x.jpg")  # no ids of its own: 1..K
    assert plain.returncode == 0, plain.stderr
    record = json.loads((tmp_path / "out_plain" / "predictions.json").read_text())[0]
    assert record["category_ids"] == [label + 1 for label in record["labels"]]

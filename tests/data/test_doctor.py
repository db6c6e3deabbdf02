"""Issue 22 item 1: the dataset doctor (detseg check), on BCCD and on a planted COCO dataset."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from detseg.cli.check import main as check_main
from detseg.config import load_config
from detseg.data.autosize import InputSize, SizeStats, anchor_coverage
from detseg.data.build import build_plain_dataset

ROOT = Path(__file__).resolve().parents[2]
BCCD_CONFIG = str(ROOT / "configs/faster_rcnn/bccd.yaml")
BCCD = ROOT / "data/bccd"
SHAPES_CONFIG = str(ROOT / "configs/faster_rcnn/shapes.yaml")


def _run(tmp_path: Path, *argv: str) -> tuple[int, dict]:
    out = tmp_path / "doctor.json"
    code = check_main([*argv, "--output", str(out)])
    return code, json.loads(out.read_text())


# ---------------------------------------------------------------------- BCCD (shipped, VOC)
@pytest.fixture(scope="module")
def bccd(tmp_path_factory) -> tuple[int, dict]:
    """trainval / test, as configs/faster_rcnn/bccd.yaml trains and evaluates."""
    return _run(tmp_path_factory.mktemp("bccd"), BCCD_CONFIG, f"data.train.root={BCCD}", f"data.val.root={BCCD}")


def test_bccd_class_counts_and_imbalance(bccd):
    code, result = bccd
    assert code == 1  # the two 1 x 1 px RBC boxes of trainval (BloodImage_00338, 00343) are errors
    assert set(result["splits"]["train"]["errors"]) == {"degenerate_box"} and result["splits"]["val"]["errors"] == {}
    train, val = result["doctor"]["splits"]["train"], result["doctor"]["splits"]["val"]
    assert train["class_counts"] == {"Platelets": 292, "RBC": 3348, "WBC": 301}
    assert val["class_counts"] == {"Platelets": 69, "RBC": 805, "WBC": 71}
    assert train["imbalance_ratio"] == round(3348 / 292, 2) == 11.47
    assert val["imbalance_ratio"] == round(805 / 69, 2) == 11.67
    assert (train["num_images"], val["num_images"]) == (292, 72)
    assert train["images_without_annotations"] == val["images_without_annotations"] == 0
    assert train["undefined_used"] == train["defined_unused"] == []
    assert result["doctor"]["label_space_difference"] == {"only_in_train": [], "only_in_val": []}


def test_bccd_duplicates_one_near_pair_inside_trainval_no_leakage(bccd):
    duplicates = bccd[1]["doctor"]["duplicates"]
    # the same blood-smear field photographed twice (pHash 4 bits apart; unrelated BCCD pairs are >= 14)
    assert duplicates["within_train"] == [{"first": "train:BloodImage_00037", "second": "train:BloodImage_00038",
                                           "kind": "near", "bits": 4}]
    assert duplicates["within_val"] == [] and duplicates["across"] == []


def test_bccd_anchor_coverage_with_the_resolved_auto_sizes(bccd):
    anchors = bccd[1]["doctor"]["splits"]["train"]["anchors"]
    assert "short side 288, long side <= 384" in anchors["setup"]  # custom.yaml's "auto", resolved from trainval
    assert anchors["num_boxes"] == 3941
    assert (anchors["boxes_iou_0.5"], anchors["boxes_iou_0.7"]) == (3940, 1786)
    # the same shares as the rule that chose the anchors (detseg.data.autosize), on the same boxes
    cfg = load_config(BCCD_CONFIG, [f"data.train.root={BCCD}", f"data.val.root={BCCD}"])
    with pytest.warns(UserWarning, match="degenerate_box=2"):  # the dataset's own one-line summary
        stats = SizeStats.of(build_plain_dataset(cfg.data, "train"))
    sizes = [[18.8], [37.6], [75.2], [150.3]]
    assert anchors["setup"].endswith(f"anchors {sizes} x aspect ratios [0.5, 1.0, 2.0]")
    expected = anchor_coverage(stats, InputSize([288], 384, 288, 384), sizes, [0.5, 1.0, 2.0])
    assert (anchors["share_iou_0.5"], anchors["share_iou_0.7"]) == pytest.approx(expected, abs=1e-6)


def test_bccd_train_val_split_leaks_and_fix_splits_drops_the_val_image(tmp_path, capsys, tree_hashes):
    before = tree_hashes(BCCD)
    out_dir = tmp_path / "fixed"
    code, result = _run(tmp_path, BCCD_CONFIG, f"data.train.root={BCCD}", "data.train.split=train",
                        f"data.val.root={BCCD}", "data.val.split=val", "--fix-splits", str(out_dir))
    assert code == 1
    assert result["doctor"]["duplicates"]["across"] == [
        {"first": "train:BloodImage_00038", "second": "val:BloodImage_00037", "kind": "near", "bits": 4}]
    assert "!!! LEAKAGE: 1 train/val image pair(s)" in capsys.readouterr().out
    val_ids = (BCCD / "ImageSets/Main/val.txt").read_text().split()
    fixed_val = (out_dir / "ImageSets/Main/val.txt").read_text().split()
    assert fixed_val == [i for i in val_ids if i != "BloodImage_00037"] and len(fixed_val) == len(val_ids) - 1
    assert (out_dir / "ImageSets/Main/train.txt").read_text().split() == \
        (BCCD / "ImageSets/Main/train.txt").read_text().split()
    assert tree_hashes(BCCD) == before


# ---------------------------------------------------------------------- a planted COCO dataset
def _picture(seed: int, hw=(120, 160)) -> np.ndarray:
    """Low-frequency blobs: each seed a different picture whose perceptual hash survives re-encoding."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(coarse, hw[::-1], interpolation=cv2.INTER_CUBIC), (0, 0), 3)


def _write_coco(path: Path, names: list[str], anns: list[tuple[str, int]], cats: dict[int, str]) -> None:
    images = [{"id": i, "file_name": n, "height": 120, "width": 160} for i, n in enumerate(names, 1)]
    ids = {n: i for i, n in enumerate(names, 1)}
    annotations = [{"id": k, "image_id": ids[n], "category_id": c, "bbox": [10, 10, 40, 30], "area": 1200.0,
                    "iscrowd": 0} for k, (n, c) in enumerate(anns, 1)]
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": c, "name": n} for c, n in cats.items()]}))


@pytest.fixture
def planted(tmp_path) -> dict:
    """train: a, b, c (no annotations), d; val: a's exact copy, b re-encoded at 95% size, e.
    train defines cat, dog, bird (3, unused) and uses category 7 (undefined); val defines cat, dog."""
    root = tmp_path / "planted"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    for seed, name in enumerate(("a.jpg", "b.jpg", "c.jpg", "d.jpg")):
        cv2.imwrite(str(root / "train" / name), _picture(seed))
    cv2.imwrite(str(root / "val" / "e.jpg"), _picture(10))
    shutil.copyfile(root / "train/a.jpg", root / "val/a_copy.jpg")
    smaller = cv2.resize(cv2.imread(str(root / "train/b.jpg")), (152, 114), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(root / "val/b_small.jpg"), smaller, [cv2.IMWRITE_JPEG_QUALITY, 70])
    _write_coco(root / "train.json", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
                [("a.jpg", 1), ("b.jpg", 2), ("d.jpg", 1), ("d.jpg", 7)], {1: "cat", 2: "dog", 3: "bird"})
    _write_coco(root / "val.json", ["a_copy.jpg", "b_small.jpg", "e.jpg"],
                [("a_copy.jpg", 1), ("e.jpg", 2)], {1: "cat", 2: "dog"})
    json_val = json.loads((root / "val.json").read_text())
    json_val["images"][1].update(height=114, width=152)
    (root / "val.json").write_text(json.dumps(json_val))
    overrides = [f"data.train.ann_file={root / 'train.json'}", f"data.train.img_dir={root / 'train'}",
                 f"data.val.ann_file={root / 'val.json'}", f"data.val.img_dir={root / 'val'}"]
    return {"root": root, "overrides": overrides}


def test_planted_findings(planted, tmp_path, capsys):
    code, result = _run(tmp_path, SHAPES_CONFIG, *planted["overrides"])
    assert code == 1 and set(result["splits"]["train"]["errors"]) == {"unknown_category"}  # category 7
    doctor = result["doctor"]
    across = {(p["first"], p["second"], p["kind"]) for p in doctor["duplicates"]["across"]}
    assert across == {("train:a.jpg", "val:a_copy.jpg", "exact"), ("train:b.jpg", "val:b_small.jpg", "near")}
    near = next(p for p in doctor["duplicates"]["across"] if p["kind"] == "near")
    assert near["bits"] <= doctor["near_duplicate_max_bits"] == 8
    assert doctor["duplicates"]["within_train"] == doctor["duplicates"]["within_val"] == []
    assert doctor["leaked_val_images"] == 2
    train = doctor["splits"]["train"]
    assert (train["images_without_annotations"], train["unannotated"]) == (1, ["c.jpg"])
    assert doctor["splits"]["val"]["unannotated"] == ["b_small.jpg"]
    assert train["undefined_used"] == ["7"] and train["defined_unused"] == ["3 (bird)"]
    assert train["class_counts"] == {"cat": 2, "dog": 1} and train["imbalance_ratio"] == 2.0
    assert doctor["label_space_difference"] == {"only_in_train": ["3 (bird)"], "only_in_val": []}
    assert train["anchors"]["num_boxes"] == 3  # shapes.yaml's RPN; category 7's box is dropped
    out = capsys.readouterr().out
    assert "!!! LEAKAGE: 2 train/val image pair(s)" in out and "train:b.jpg = val:b_small.jpg" in out
    assert "categories used but not defined (dropped in training): 7" in out


def test_fix_splits_leaves_the_leaked_images_out_and_the_originals_untouched(planted, tmp_path, tree_hashes):
    before = tree_hashes(planted["root"])
    out_dir = tmp_path / "fixed"
    check_main([SHAPES_CONFIG, *planted["overrides"], "--fix-splits", str(out_dir)])
    val = json.loads((out_dir / "instances_val.json").read_text())
    assert [e["file_name"] for e in val["images"]] == ["e.jpg"]
    assert [a["image_id"] for a in val["annotations"]] == [3]
    assert (out_dir / "instances_train.json").read_bytes() == (planted["root"] / "train.json").read_bytes()
    assert tree_hashes(planted["root"]) == before
    with pytest.raises(FileExistsError, match="new or empty folder"):  # never over existing files
        check_main([SHAPES_CONFIG, *planted["overrides"], "--fix-splits", str(out_dir)])


def test_one_split_on_request(planted, tmp_path):
    code, result = _run(tmp_path, SHAPES_CONFIG, *planted["overrides"], "--split", "val")
    assert code == 0 and list(result["splits"]) == ["val"] and list(result["doctor"]["splits"]) == ["val"]
    assert "across" not in result["doctor"]["duplicates"] and result["doctor"]["label_space_difference"] is None


def test_an_unset_val_split_is_left_out_and_an_unreadable_one_is_an_error(planted, tmp_path):
    train_only = planted["overrides"][:2] + ["data.val.ann_file="]
    code, result = _run(tmp_path, SHAPES_CONFIG, *train_only)
    assert list(result["splits"]) == ["train"]
    code, result = _run(tmp_path, SHAPES_CONFIG, *planted["overrides"][:2], f"data.val.ann_file={tmp_path}/no.json")
    assert code == 1 and "cannot read COCO json" in result["splits"]["val"]["errors"]["unreadable_split"][0]

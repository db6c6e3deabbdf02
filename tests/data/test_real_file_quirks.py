"""The quirks of real photographs and real annotation files (issue 17, point 4): each one handled the
same way by training (the datasets) and by tools/check_dataset.py (detseg.data.check), and named."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.TiffImagePlugin import ImageFileDirectory_v2

from detseg.data.check import Report, check_coco, check_image_file, check_voc
from detseg.data.collate import collate
from detseg.data.datasets.base import read_rgb
from detseg.data.datasets.coco import CocoDetection
from detseg.data.datasets.voc import VOCDetection
from detseg.data.errors import DatasetError, data_summary


def _jpeg(hw=(30, 40), exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90,
                                                                            **({"exif": exif} if exif else {}))
    return buf.getvalue()


def _exif_orientation(value: int) -> bytes:
    """An EXIF block whose orientation tag is a LONG (so values above 65535 can be written, as some
    broken writers do)."""
    ifd = ImageFileDirectory_v2(prefix=b"II")
    ifd[0x0112] = value
    ifd.tagtype[0x0112] = 4
    return b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00" + ifd.tobytes(8)


# ---------------------------------------------------------------------- images
def test_jpeg_with_bytes_after_its_end_marker_is_whole(tmp_path):
    path = tmp_path / "padded.jpg"
    path.write_bytes(_jpeg() + b"\x00" * 300 + b"camera maker notes" * 20)  # far past the 64-byte tail
    report = Report("t")
    check_image_file(path, (30, 40), report, "padded.jpg")
    assert report.ok and not report.problems
    assert read_rgb(str(path)).shape == (30, 40, 3)


def test_jpeg_cut_short_is_truncated(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(_jpeg()[:-400])
    report = Report("t")
    check_image_file(path, (30, 40), report, "cut.jpg")
    assert list(report.errors) == ["truncated_image"] and "cut.jpg" in report.errors["truncated_image"][0]


@pytest.mark.parametrize("value", [0, 9, 65537])
def test_invalid_exif_orientation_is_ignored_with_a_warning(tmp_path, value):
    path = tmp_path / "odd.jpg"
    path.write_bytes(_jpeg((30, 40), _exif_orientation(value)))
    report = Report("t")
    check_image_file(path, (30, 40), report, "odd.jpg")  # the stored size is the displayed size
    assert report.ok and list(report.problems) == ["exif_orientation_invalid"]
    message = report.problems["exif_orientation_invalid"][0]
    assert f"EXIF orientation {value}" in message and "ignored" in message and "applied" not in message
    assert read_rgb(str(path)).shape == (30, 40, 3)  # training uses it as stored, too


def test_valid_exif_orientation_is_still_reported_as_applied(tmp_path):
    path = tmp_path / "turned.jpg"
    path.write_bytes(_jpeg((30, 40), _exif_orientation(6)))
    report = Report("t")
    check_image_file(path, (40, 30), report, "turned.jpg")
    assert report.ok and list(report.problems) == ["exif_orientation"] and "applied" in report.problems[
        "exif_orientation"][0]


# ---------------------------------------------------------------------- VOC
def _voc(root, voc_xml, objects, size=(30, 40), image_hw=(30, 40)):
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages" / "x.jpg").write_bytes(_jpeg(image_hw))
    (root / "Annotations" / "x.xml").write_text(voc_xml("x", size, objects))
    (root / "ImageSets/Main/train.txt").write_text("x\n")
    return root


def test_voc_size_that_disagrees_with_the_image_uses_the_image(tmp_path, voc_xml):
    root = _voc(tmp_path, voc_xml, [("cell", 0, 1, 1, 50, 40)], size=(300, 400), image_hw=(60, 80))
    ds = VOCDetection(root, "train")  # "error" policy: a repaired size does not stop anything
    assert ds.get_image_info(0)[1] == (60, 80) and ds.skipped == {}
    assert ds.problems.repaired == {"size_from_image": 1}
    sample = ds[0]
    assert sample["orig_size"] == (60, 80) and torch.equal(sample["boxes"], torch.tensor([[0.0, 0.0, 50.0, 40.0]]))
    report = check_voc(root, "train")
    assert report.ok and len(report.problems["size_from_image"]) == 1
    assert "x.xml" in report.problems["size_from_image"][0] and "(300, 400)" in report.problems["size_from_image"][0]


def test_voc_degenerate_duplicate_and_border_boxes(tmp_path, voc_xml):
    objects = [("cell", 0, 5, 5, 5, 5),        # drawn as a point (BCCD has two): dropped
               ("cell", 0, 10, 10, 10, 25),    # a vertical line: dropped
               ("cell", 0, 2, 2, 12, 12),
               ("cell", 0, 2, 2, 12, 12),      # an exact duplicate: dropped, counted
               ("cell", 0, 30, 20, 55, 38)]    # crosses the 40x30 border: clipped, counted
    root = _voc(tmp_path, voc_xml, objects)
    with pytest.raises(DatasetError, match=r"degenerate_box: x\.xml \(cell\)"):
        VOCDetection(root, "train")
    with pytest.warns(UserWarning, match="degenerate_box=2"):
        ds = VOCDetection(root, "train", on_bad_sample="skip")
    assert ds.skipped == {"degenerate_box": 2}
    assert ds.problems.repaired == {"box_partly_outside": 1, "duplicate_box": 1}
    np.testing.assert_array_equal(ds.get_annotation(0)["boxes"], [[1, 1, 12, 12], [29, 19, 40, 30]])
    report = check_voc(root, "train")
    assert set(report.errors) == set(ds.skipped)  # the checker and training agree
    assert len(report.errors["degenerate_box"]) == 2 and all("x.xml" in m for m in report.errors["degenerate_box"])
    assert set(report.problems) - set(report.errors) == {"box_partly_outside", "duplicate_box"}
    line = data_summary(ds)
    assert "dropped degenerate_box=2" in line and "repaired box_partly_outside=1, duplicate_box=1" in line


# ---------------------------------------------------------------------- COCO
def _coco(tmp_path, anns):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "p.jpg").write_bytes(_jpeg())
    data = {"images": [{"id": 1, "file_name": "p.jpg", "height": 30, "width": 40}],
            "categories": [{"id": 5, "name": "cell"}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 5, "bbox": b, "iscrowd": 0, "area": 1}
                            for i, b in enumerate(anns)]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, tmp_path / "img"


def test_coco_degenerate_duplicate_and_border_boxes(tmp_path):
    ann_file, img_dir = _coco(tmp_path, [[3, 3, 0.5, 8], [3, 3, 10, 10], [3, 3, 10, 10], [35, 5, 10, 10]])
    with pytest.raises(DatasetError, match=r"degenerate_box: annotation id 1 \(image p\.jpg\)"):
        CocoDetection(ann_file, img_dir)
    with pytest.warns(UserWarning, match="degenerate_box=1"):
        ds = CocoDetection(ann_file, img_dir, on_bad_sample="skip")
    assert ds.skipped == {"degenerate_box": 1}
    assert ds.problems.repaired == {"box_partly_outside": 1, "duplicate_box": 1}
    assert sorted(ds.coco.anns) == [2, 4]  # evaluation sees the same ground truth as training
    assert ds[0]["boxes"].tolist() == [[3, 3, 13, 13], [35, 5, 40, 15]]
    report = check_coco(ann_file, img_dir)
    assert set(report.errors) == {"degenerate_box"}
    assert report.problems["duplicate_box"] == ["annotation id 3 (image p.jpg): bbox [3, 3, 10, 10] repeats an "
                                                "earlier box of the image; dropped"]
    assert "annotation id 4 (image p.jpg)" in report.problems["box_partly_outside"][0]


# ---------------------------------------------------------------------- training
def test_undecodable_image_in_training_is_carried_to_the_summary_not_warned(tmp_path, recwarn):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "img" / "b.jpg").write_bytes(_jpeg())
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 30, "width": 40},
                       {"id": 2, "file_name": "b.jpg", "height": 30, "width": 40}],
            "categories": [{"id": 1, "name": "x"}], "annotations": []}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = CocoDetection(tmp_path / "ann.json", tmp_path / "img", on_bad_sample="skip")
    ds.quiet_skips = True
    batch = collate([ds[0], ds[1]])
    assert not [w for w in recwarn if "skipping image" in str(w.message)]
    assert len(batch.skipped_images) == 1 and "a.jpg" in batch.skipped_images[0]
    line = data_summary(ds, batch.skipped_images)
    assert "skipped while training unreadable_image=1" in line and "a.jpg" in line

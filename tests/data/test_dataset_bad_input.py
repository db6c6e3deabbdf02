from __future__ import annotations

import contextlib
import copy

import pytest

from detseg.data.datasets.coco import CocoDetection
from detseg.data.datasets.voc import VOCDetection
from detseg.data.errors import DatasetError


# pycocotools' mask decoding trips a numpy-2 DeprecationWarning inside its C extension: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _break(data: dict, case: str) -> tuple[dict, str, str]:
    """Return (broken copy, kind counted under "skip", text the error must contain)."""
    data = copy.deepcopy(data)
    anns = data["annotations"]
    if case == "missing_file":
        data["images"][2]["file_name"] = "nope.png"
        return data, "missing_file", "nope.png"
    if case == "zero_box":
        anns[1]["bbox"] = [25, 5, 0, 10]
        return data, "invalid_box", "annotation id 2 (image rgb.jpg)"
    if case == "nan_box":
        anns[1]["bbox"] = [25, 5, float("nan"), 10]
        return data, "invalid_box", "annotation id 2"
    if case == "outside_box":
        anns[1]["bbox"] = [50, 5, 10, 10]
        return data, "box_outside_image", "annotation id 2"
    if case == "unknown_category":
        anns[1]["category_id"] = 99
        return data, "unknown_category", "category_id 99"
    assert case == "no_image_entry"
    anns[1]["image_id"] = 12345
    return data, "missing_image_entry", "annotation id 2"


@pytest.mark.parametrize("case", ["missing_file", "zero_box", "nan_box", "outside_box", "unknown_category",
                                  "no_image_entry"])
def test_coco_bad_annotations(coco_case, case):
    data, kind, text = _break(coco_case["data"], case)
    ann_file = coco_case["write"](data)
    with pytest.raises(DatasetError) as info:
        CocoDetection(ann_file, coco_case["img_dir"])
    assert str(ann_file) in str(info.value) and text in str(info.value) and kind in str(info.value)

    with pytest.warns(UserWarning, match=kind):
        ds = CocoDetection(ann_file, coco_case["img_dir"], on_bad_sample="skip")
    assert ds.skipped == {kind: 1}
    if case == "missing_file":  # the image goes, with its annotation
        assert len(ds) == 3 and 30 not in ds.image_ids and len(ds.coco.anns) == 3
    else:
        assert len(ds) == 4 and 2 not in ds.coco.anns and len(ds[0]["boxes"]) == 2


def test_many_problems_are_listed_with_a_count(coco_case):
    data = copy.deepcopy(coco_case["data"])
    data["annotations"] = [dict(data["annotations"][0], id=100 + i, bbox=[0, 0, -1, 3]) for i in range(15)]
    with pytest.raises(DatasetError) as info:
        CocoDetection(coco_case["write"](data), coco_case["img_dir"])
    message = str(info.value)
    assert "15 problem(s)" in message and "and 5 more" in message
    assert "annotation id 109" in message and "annotation id 110" not in message


@pytest.mark.parametrize("payload", [b"", b"not an image at all", "truncated"])
def test_coco_undecodable_image(coco_case, payload):
    path = coco_case["img_dir"] / "rgb.jpg"
    payload = path.read_bytes()[:200] if payload == "truncated" else payload
    path.write_bytes(payload)
    ds = CocoDetection(coco_case["ann_file"], coco_case["img_dir"])  # construction does not decode
    with pytest.raises(DatasetError, match="rgb.jpg"):
        ds[0]
    ds = CocoDetection(coco_case["ann_file"], coco_case["img_dir"], on_bad_sample="skip")
    with pytest.warns(UserWarning, match="rgb.jpg"):
        sample = ds[0]
    assert sample["image_id"] == 20  # the next image, deterministically
    assert ds.skipped == {"unreadable_image": 1}


def test_size_mismatch_is_reported(coco_case):
    data = copy.deepcopy(coco_case["data"])
    data["images"][1]["height"] = 99
    ds = CocoDetection(coco_case["write"](data), coco_case["img_dir"])
    with pytest.raises(DatasetError, match="gray.png"):
        ds[1]


def test_malformed_json_and_policy(coco_case):
    path = coco_case["root"] / "broken.json"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="broken.json"):
        CocoDetection(path, coco_case["img_dir"])
    with pytest.raises(ValueError, match="on_bad_sample"):
        CocoDetection(coco_case["ann_file"], coco_case["img_dir"], on_bad_sample="ignore")


def test_user_files_are_never_modified(coco_case, voc_case, tree_hashes):
    data, _, _ = _break(coco_case["data"], "zero_box")
    bad_file = coco_case["write"](data, "bad.json")
    before = tree_hashes(coco_case["root"]), tree_hashes(voc_case)
    for ann_file, policy in ((coco_case["ann_file"], "error"), (bad_file, "skip")):
        with pytest.warns(UserWarning) if policy == "skip" else contextlib.nullcontext():
            ds = CocoDetection(ann_file, coco_case["img_dir"], with_masks=True, on_bad_sample=policy)
        [ds[i] for i in range(len(ds))]
    voc = VOCDetection(voc_case, "train")
    [voc[i] for i in range(len(voc))], voc.coco
    assert (tree_hashes(coco_case["root"]), tree_hashes(voc_case)) == before


@pytest.mark.parametrize("case, kind", [
    ("missing_xml", "missing_annotation_file"), ("missing_image", "missing_file"),
    ("unknown_class", "unknown_category"), ("inverted_box", "invalid_box"), ("outside_box", "box_outside_image"),
    ("broken_xml", "bad_annotation_file"),
])
def test_voc_bad_input(voc_case, voc_xml, case, kind):
    xml = voc_case / "Annotations" / "b.xml"
    if case == "missing_xml":
        xml.unlink()
    elif case == "missing_image":
        (voc_case / "JPEGImages" / "b.jpg").unlink()
    elif case == "broken_xml":
        xml.write_text("<annotation><object>")
    else:
        box = {"unknown_class": (21, 11, 40, 30), "inverted_box": (30, 11, 21, 30), "outside_box": (41, 1, 50, 9)}
        name = "tree" if case == "unknown_class" else "car"
        xml.write_text(voc_xml("b", (30, 40), [(name, 0, *box[case])]))
    classes = ["car", "person"]
    with pytest.raises(DatasetError) as info:
        VOCDetection(voc_case, "train", classes=classes)
    assert f"{kind}: b" in str(info.value) and "train.txt" in str(info.value)
    with pytest.warns(UserWarning, match=kind):
        ds = VOCDetection(voc_case, "train", classes=classes, on_bad_sample="skip")
    assert ds.skipped == {kind: 1}
    whole_image_dropped = case in ("missing_xml", "missing_image", "broken_xml")
    assert len(ds) == (1 if whole_image_dropped else 2)

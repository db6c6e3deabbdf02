from __future__ import annotations

import contextlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from detseg.data.datasets.shapes import CLASS_NAMES, generate_shapes_dataset


# pycocotools' mask decoding trips a numpy-2 DeprecationWarning inside its C extension: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _load(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tree_hashes):
    generate_shapes_dataset(tmp_path / "a", 4, 2, seed=3, workers=1)
    generate_shapes_dataset(tmp_path / "b", 4, 2, seed=3, workers=1)
    generate_shapes_dataset(tmp_path / "c", 4, 2, seed=4, workers=1)
    a, b, c = (tree_hashes(tmp_path / x) for x in "abc")
    # jsons, jpegs, voc jpegs, voc xmls, Main image sets, semantic PNGs, Segmentation image sets
    assert len(a) == 2 + 6 + 6 + 6 + 2 + 6 + 2
    assert a["voc/SegmentationClass/train_000001.png"] != c["voc/SegmentationClass/train_000001.png"]
    assert a == b
    assert a.keys() == c.keys()
    assert a["annotations/instances_train.json"] != c["annotations/instances_train.json"]
    assert a["train/000001.jpg"] != c["train/000001.jpg"]


def test_output_does_not_depend_on_workers(tmp_path, tree_hashes):
    generate_shapes_dataset(tmp_path / "serial", 70, 1, seed=0, workers=1)
    generate_shapes_dataset(tmp_path / "pool", 70, 1, seed=0, workers=2)
    assert tree_hashes(tmp_path / "serial") == tree_hashes(tmp_path / "pool")


def test_coco_files_are_valid(shapes_paths):
    for split, count in (("train", 12), ("val", 6)):
        coco = _load(shapes_paths[f"{split}_json"])
        assert sorted(coco.imgs) == list(range(1, count + 1))
        assert sorted(coco.anns) == list(range(1, len(coco.anns) + 1))
        assert [coco.cats[i]["name"] for i in range(1, 7)] == list(CLASS_NAMES)
        for img_id, entry in coco.imgs.items():
            image = Image.open(shapes_paths[f"{split}_dir"] / entry["file_name"])
            assert image.size == (entry["width"], entry["height"]) and image.mode == "RGB"
            assert 160 <= entry["width"] <= 256 and 160 <= entry["height"] <= 256
            assert 1 <= len(coco.imgToAnns[img_id]) <= 6
            for ann in coco.imgToAnns[img_id]:
                _check_annotation(coco, ann, entry)


def _check_annotation(coco: COCO, ann: dict, entry: dict) -> None:
    x, y, w, h = ann["bbox"]
    assert 0 <= x and 0 <= y and x + w <= entry["width"] and y + h <= entry["height"] and w > 0 and h > 0
    assert ann["iscrowd"] == 0 and ann["area"] > 0
    assert ann["segmentation"] and all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
    mask = coco.annToMask(ann)  # the polygons rasterize back to exactly the visible mask
    ys, xs = np.nonzero(mask)
    assert mask.sum() == ann["area"]
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)


def test_voc_files_agree_with_coco(shapes_paths):
    voc = shapes_paths["voc_root"]
    for split in ("train", "val"):
        coco = _load(shapes_paths[f"{split}_json"])
        names = (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        assert names == [f"{split}_{coco.imgs[i]['file_name'][:-4]}" for i in sorted(coco.imgs)]
        for img_id, name in zip(sorted(coco.imgs), names):
            root = ET.parse(voc / "Annotations" / f"{name}.xml").getroot()
            assert root.findtext("filename") == f"{name}.jpg"
            assert int(root.findtext("size/width")) == coco.imgs[img_id]["width"]
            assert (voc / "JPEGImages" / f"{name}.jpg").read_bytes() == \
                (shapes_paths[f"{split}_dir"] / coco.imgs[img_id]["file_name"]).read_bytes()
            objects = [(o.findtext("name"), [int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")])
                       for o in root.iter("object")]
            expected = [(coco.cats[a["category_id"]]["name"], [a["bbox"][0] + 1, a["bbox"][1] + 1,
                         a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]) for a in coco.imgToAnns[img_id]]
            assert objects == expected


def test_cli(tmp_path, capsys):
    from detseg.cli.make_dataset import main

    main(["shapes", "--output-dir", str(tmp_path), "--num-train", "2", "--num-val", "1", "--seed", "5",
          "--min-size", "64", "--max-size", "80"])
    data = json.loads((tmp_path / "annotations" / "instances_val.json").read_text())
    assert len(data["images"]) == 1 and 64 <= data["images"][0]["height"] <= 80 and data["info"]["seed"] == 5
    assert "train: 2 images" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["shapes"])  # --output-dir is required

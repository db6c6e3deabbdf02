"""``--fix-splits OUT_DIR``: split files without the val images that duplicate train images.

Written into a new (or empty) folder, never over the user's files: VOC gets
``OUT_DIR/ImageSets/Main/train.txt`` (the train list as it was) and ``val.txt`` (the val list less the
leaked ids); COCO gets ``OUT_DIR/instances_train.json`` (a byte copy) and ``instances_val.json`` (less
the leaked images and their annotations). Returns the lines that say how to use them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from detseg.utils.files import atomic_write_text


def write_fixed_splits(data_cfg, leaked_val_keys: list, out_dir: str | Path) -> list[str]:
    out = _new_folder(Path(out_dir))
    if data_cfg.format == "voc" and data_cfg.task == "detection":
        return _fix_voc(data_cfg, set(map(str, leaked_val_keys)), out)
    if data_cfg.format == "coco":
        return _fix_coco(data_cfg, set(leaked_val_keys), out)
    raise ValueError("--fix-splits writes VOC or COCO detection split files; "
                     f"data.format '{data_cfg.format}' with data.task '{data_cfg.task}' has none")


def _new_folder(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--fix-splits {out}: give a new or empty folder (the dataset's files are never "
                              "replaced)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _voc_ids(root: str, split: str) -> list[str]:
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    return [line.split()[0] for line in path.read_text().split("\n") if line.strip()]


def _fix_voc(data_cfg, leaked: set[str], out: Path) -> list[str]:
    folder = out / "ImageSets" / "Main"
    folder.mkdir(parents=True)
    train = _voc_ids(data_cfg.train.root, data_cfg.train.split)
    val = [i for i in _voc_ids(data_cfg.val.root, data_cfg.val.split) if i not in leaked]
    atomic_write_text(folder / "train.txt", "".join(f"{i}\n" for i in train))
    atomic_write_text(folder / "val.txt", "".join(f"{i}\n" for i in val))
    return [f"wrote {folder / 'train.txt'} ({len(train)} ids) and {folder / 'val.txt'} ({len(val)} ids, "
            f"{len(leaked)} leaked left out)",
            f"to use them, copy val.txt into {Path(data_cfg.val.root) / 'ImageSets' / 'Main'} under a new name "
            "(e.g. val_clean.txt) and set data.val.split=val_clean"]


def _fix_coco(data_cfg, leaked: set, out: Path) -> list[str]:
    shutil.copyfile(data_cfg.train.ann_file, out / "instances_train.json")
    data = json.loads(Path(data_cfg.val.ann_file).read_text(encoding="utf-8"))
    kept = [e for e in data["images"] if not (isinstance(e, dict) and e.get("id") in leaked)]
    dropped = len(data["images"]) - len(kept)
    data["images"] = kept
    data["annotations"] = [a for a in data.get("annotations", []) if a.get("image_id") not in leaked]
    atomic_write_text(out / "instances_val.json", json.dumps(data))
    return [f"wrote {out / 'instances_train.json'} (a copy) and {out / 'instances_val.json'} ({len(kept)} images, "
            f"{dropped} leaked left out)",
            f"use them with data.train.ann_file={out / 'instances_train.json'} "
            f"data.val.ann_file={out / 'instances_val.json'}"]

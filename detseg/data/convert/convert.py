"""Format dispatch: which reader and writer, which splits, and the safety checks around them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detseg.data.convert import coco_format, voc_format, yolo_format
from detseg.data.convert.files import prepare_output
from detseg.data.convert.records import DatasetRecords
from detseg.data.errors import DatasetError

FORMATS = ("coco", "voc", "yolo")
_FIND_SPLITS = {"coco": coco_format.find_splits, "voc": voc_format.find_splits, "yolo": yolo_format.find_splits}
# format -> reader (source, splits, classes, on_bad_sample); YOLO has neither class names to pin nor a skip policy
_READERS = {
    "coco": lambda source, splits, classes, policy: coco_format.read_coco(source, splits, on_bad_sample=policy),
    "voc": lambda source, splits, classes, policy: voc_format.read_voc(source, splits, classes, policy),
    "yolo": lambda source, splits, classes, policy: yolo_format.read_yolo(source, splits),
}


def _write_coco(records, output, image_mode, with_masks) -> int:
    coco_format.write_coco(records, output, image_mode, with_masks)
    return 0


def _write_voc(records, output, image_mode, with_masks) -> int:
    voc_format.write_voc(records, output, image_mode)  # VOC holds no masks
    return 0


# format -> writer returning the number of objects it left out
_WRITERS = {"coco": _write_coco, "voc": _write_voc, "yolo": yolo_format.write_yolo}


@dataclass
class ConvertSummary:
    splits: dict[str, tuple[int, int]]   # split -> (images, objects) read
    class_names: list[str]
    left_out: int = 0                    # objects the target format cannot hold (YOLO: crowd / difficult)
    masks_written: bool = False


def read_dataset(fmt: str, source: Path, splits: list[str] | None = None, image_dir: Path | None = None,
                 classes: list[str] | None = None, on_bad_sample: str = "error") -> DatasetRecords:
    """``source``: a dataset root; for COCO also a single json file (then ``image_dir`` is required).
    ``on_bad_sample``: "skip" leaves bad COCO / VOC annotations out of the copy (as training does)."""
    _check_format(fmt)
    if not source.exists():
        raise FileNotFoundError(f"--input {source} does not exist")
    if fmt == "coco" and source.is_file():
        if image_dir is None:
            raise ValueError(f"--input {source} is a COCO json file: pass --image-dir, the folder its file_name "
                             "entries are relative to")
        return coco_format.read_coco(source.parent, (splits or ["train"])[:1], source, image_dir, on_bad_sample)
    splits = splits or _FIND_SPLITS[fmt](source)
    if not splits:
        raise DatasetError(f"{source}: no splits found for format {fmt!r}; pass --splits")
    return _READERS[fmt](source, splits, classes, on_bad_sample)


def write_dataset(records: DatasetRecords, fmt: str, output: Path, image_mode: str = "copy",
                  with_masks: bool = True) -> int:
    """Returns the number of objects left out (see ConvertSummary.left_out)."""
    _check_format(fmt)
    return _WRITERS[fmt](records, output, image_mode, with_masks)


def convert(src_format: str, dst_format: str, source: Path, output: Path, splits: list[str] | None = None,
            image_dir: Path | None = None, classes: list[str] | None = None, image_mode: str = "copy",
            with_masks: bool = True, overwrite: bool = False, on_bad_sample: str = "error") -> ConvertSummary:
    """Read everything first (so bad input stops before anything is written), then write."""
    source, output = Path(source), Path(output)
    image_dir = Path(image_dir) if image_dir is not None else None
    records = read_dataset(src_format, source, splits, image_dir, classes, on_bad_sample)
    prepare_output(output, [source, *([image_dir] if image_dir else [])], overwrite)
    left_out = write_dataset(records, dst_format, output, image_mode, with_masks)
    counts = {s.name: (len(s.images), sum(len(i.instances) for i in s.images)) for s in records.splits}
    masks = with_masks and records.has_masks and dst_format in ("coco", "yolo")
    return ConvertSummary(counts, records.class_names, left_out, masks)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {FORMATS}")

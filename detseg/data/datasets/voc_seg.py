"""PASCAL VOC semantic segmentation: ``JPEGImages/<id>.jpg`` + ``SegmentationClass/<id>.png``,
listed in ``ImageSets/Segmentation/<split>.txt``.

Rules:
- A label PNG holds class indices (palette or grey): 0 = background, c = class ``classes[c - 1]``,
  255 = ignore (VOC's object borders). ``classes`` is required: PNGs carry no names.
- Image ids are the dataset indices 0..N-1. Samples have no boxes (this layout has none).
- A listed id without its JPEG or PNG is a bad sample (``on_bad_sample`` as for VOCDetection);
  a PNG whose size differs from its image, or with a value above len(classes) other than 255,
  raises DatasetError when it is read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detseg.data.datasets.base import DetectionDataset, Target, TransformFn
from detseg.data.datasets.voc import VOCDetection, _image_size
from detseg.data.errors import DatasetError, ProblemLog
from detseg.data.palette import read_label_png

IGNORE = 255


@dataclass
class _SegRecord:
    voc_id: str
    image: Path
    labels: Path
    hw: tuple[int, int]


class VOCSegmentation(DetectionDataset):
    with_sem_seg = True

    def __init__(self, root: str | os.PathLike, split: str, classes: list[str] | None,
                 transforms: TransformFn | None = None, on_bad_sample: str = "error"):
        if not classes:
            raise ValueError("VOC semantic data needs data.classes (the names of label values 1, 2, ...)")
        self.root, self.split = Path(root), split
        list_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        super().__init__(str(list_file), transforms, on_bad_sample)
        self.problems = problems = ProblemLog(str(list_file))
        ids = VOCDetection._read_ids(list_file)
        self._records = [r for r in (self._read_record(i, problems) for i in ids) if r is not None]
        self.skipped = problems.finish(on_bad_sample)
        self.class_names = list(classes)
        self.category_ids = list(range(1, len(self.class_names) + 1))
        self.image_ids = list(range(len(self._records)))

    def _read_record(self, voc_id: str, problems: ProblemLog) -> _SegRecord | None:
        image = self.root / "JPEGImages" / f"{voc_id}.jpg"
        labels = self.root / "SegmentationClass" / f"{voc_id}.png"
        for path in (image, labels):
            if not path.is_file():
                problems.add("missing_file", f"{voc_id}: {path} does not exist")
                return None
        try:
            return _SegRecord(voc_id, image, labels, _image_size(image))
        except (OSError, SyntaxError, ValueError) as exc:
            problems.add("unreadable_image", f"{voc_id}: {image}: {exc}")
            return None

    def get_image_info(self, idx: int) -> tuple[str, tuple[int, int]]:
        record = self._records[idx]
        return str(record.image), record.hw

    def _load_target(self, idx: int, hw: tuple[int, int]) -> Target:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), None

    def _load_sem_seg(self, idx: int, hw: tuple[int, int]) -> np.ndarray:
        path = self._records[idx].labels
        labels = read_label_png(path)
        if labels.shape != tuple(hw):
            raise DatasetError(f"{path}: label map (h, w) = {labels.shape} differs from its image's {tuple(hw)}")
        bad = (labels > len(self.class_names)) & (labels != IGNORE)
        if bad.any():
            unknown = np.unique(labels[bad])
            raise DatasetError(f"{path}: label values {unknown.tolist()} are neither 0..{len(self.class_names)} "
                               f"(background + data.classes) nor {IGNORE} (ignore)")
        return labels

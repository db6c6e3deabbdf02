"""The in-memory dataset every converter reads into and writes from.

One box convention, the framework's: ``x1, y1, x2, y2`` in 0-based pixel *edges* of the image as
displayed (a box covering pixel columns 0..9 is ``x1 = 0, x2 = 10``). Readers clip boxes to the
image, as the training datasets do. Labels index ``class_names``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instance:
    label: int                                   # index into DatasetRecords.class_names
    box: tuple[float, float, float, float]       # xyxy, 0-based pixel edges
    polygons: list[list[float]] | None = None    # COCO order [x1, y1, x2, y2, ...], absolute pixels
    rle: dict | None = None                      # a COCO RLE instead of polygons
    iscrowd: bool = False                        # COCO iscrowd / VOC difficult: kept, ignored by evaluation

    @property
    def has_mask(self) -> bool:
        return bool(self.polygons) or self.rle is not None


@dataclass
class ImageRecord:
    file_name: str          # relative POSIX path inside the split's image folder
    source: Path            # the image file to copy or link
    height: int
    width: int
    instances: list[Instance] = field(default_factory=list)


@dataclass
class Split:
    name: str
    images: list[ImageRecord]


@dataclass
class DatasetRecords:
    class_names: list[str]
    category_ids: list[int]   # COCO category id of each label (1..K when the source has none)
    splits: list[Split]

    def __post_init__(self):
        if len(self.class_names) != len(self.category_ids):
            raise ValueError(f"{len(self.class_names)} class names but {len(self.category_ids)} category ids")

    @property
    def has_masks(self) -> bool:
        return any(inst.has_mask for s in self.splits for img in s.images for inst in img.instances)

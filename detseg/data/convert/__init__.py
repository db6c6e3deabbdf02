"""Dataset conversion between COCO json, Pascal VOC xml and YOLO txt: read -> records -> write.

``convert(src_format, dst_format, input, output)`` is what tools/convert_dataset.py calls; the
per-format modules hold the layout and coordinate rules.
"""
from detseg.data.convert.convert import FORMATS, ConvertSummary, convert, read_dataset, write_dataset
from detseg.data.convert.records import DatasetRecords, ImageRecord, Instance, Split

__all__ = ["FORMATS", "ConvertSummary", "convert", "read_dataset", "write_dataset",
           "DatasetRecords", "ImageRecord", "Instance", "Split"]

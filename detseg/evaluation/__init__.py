"""Evaluators: COCO (pycocotools), PASCAL VOC detection AP, semantic segmentation (mIoU), classification;
all follow one protocol (detseg.evaluation.protocol.Evaluator)."""
from detseg.evaluation.classification import ClassificationEvaluator
from detseg.evaluation.coco import CocoEvaluator, instances_to_coco_results
from detseg.evaluation.sem_seg import SemSegEvaluator
from detseg.evaluation.distributed import gather_results
from detseg.evaluation.protocol import Evaluator
from detseg.evaluation.table import format_metrics_table
from detseg.evaluation.voc import VocEvaluator, voc_ap

__all__ = [
    "ClassificationEvaluator",
    "CocoEvaluator",
    "Evaluator",
    "SemSegEvaluator",
    "VocEvaluator",
    "format_metrics_table",
    "gather_results",
    "instances_to_coco_results",
    "voc_ap",
]

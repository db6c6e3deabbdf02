"""Evaluation of a model on a dataset: the evaluators its task calls for, one loop, one set of files.

``evaluate`` returns ``{block: {name: value}}`` on rank 0 and ``{}`` on the other ranks (distributed):
- detection: "bbox" (and "segm" for mask models; detseg.evaluation.coco), and "voc" (VOC mAP) for
  ``data.format: voc`` data;
- semantic segmentation (``model.task == "semantic"``): "sem_seg" (mIoU & co., detseg.evaluation.sem_seg)
  against the stored, full-size label maps;
- classification: "classification" (top1, top5; detseg.evaluation.classification);
then, with ``with_loss``, "val_loss" (detseg.evaluation.val_loss), last.

Files (rank 0, with ``output_dir``): metrics.json, and for detection the PR curves and the confusion
matrix (detseg.reports.run.write_evaluation_files) and, with ``write_predictions``, predictions.json.
"""
from __future__ import annotations

from pathlib import Path

from detseg.app.inference import run_inference
from detseg.app.loaders import eval_loader
from detseg.app.task import dataset_task, model_task, require_matching_task
from detseg.config import Config
from detseg.evaluation.classification import ClassificationEvaluator
from detseg.evaluation.coco import CocoEvaluator
from detseg.evaluation.protocol import Evaluator
from detseg.evaluation.sem_seg import SemSegEvaluator
from detseg.evaluation.val_loss import ValidationLoss
from detseg.evaluation.voc import VocEvaluator
from detseg.reports.history import VAL_LOSS
from detseg.reports.run import write_evaluation_files
from detseg.utils.distributed import get_rank

PREDICTIONS = "predictions.json"


def build_evaluators(model, dataset, cfg: Config) -> list[Evaluator]:
    """The evaluators of the model's task, given the dataset's ground truth; the task must suit the data."""
    task = model_task(model)
    require_matching_task(task, dataset_task(dataset), cfg.model.arch)
    if task == "semantic":
        return [SemSegEvaluator(["background", *dataset.class_names], dataset.original_sem_seg)]
    if task == "classification":
        _require_trained_classes(cfg, dataset)
        return [ClassificationEvaluator(model.fc.out_features)]
    iou_types = ("bbox", "segm") if getattr(model, "has_masks", False) else ("bbox",)
    evaluators: list[Evaluator] = [CocoEvaluator(dataset.coco, dataset.category_ids, dataset.class_names, iou_types)]
    if cfg.data.format == "voc":
        evaluators.append(VocEvaluator(dataset.class_names, dataset.get_annotation))
    return evaluators


def _require_trained_classes(cfg: Config, dataset) -> None:
    trained = cfg.model.class_names
    if trained and list(trained) != list(dataset.class_names):  # ImageFolder labels are sorted folder names
        raise ValueError(f"the evaluation folders' classes {list(dataset.class_names)} differ from the "
                         f"model's {list(trained)}")


def evaluate(model, dataset, cfg: Config, device, output_dir: str | Path | None = None,
             with_loss: bool = False, write_predictions: bool = True) -> dict:
    """The metrics of ``model`` on ``dataset`` (see the module docstring), written to ``output_dir`` when
    given. ``with_loss`` adds a "val_loss" block (the batches must carry what the loss needs, e.g. masks)."""
    evaluators = build_evaluators(model, dataset, cfg)
    val_loss = ValidationLoss() if with_loss else None
    for batch, predictions in run_inference(model, eval_loader(cfg, dataset), device, val_loss=val_loss,
                                            train_cfg=cfg.train):
        for evaluator in evaluators:
            evaluator.process(batch, predictions)
    metrics: dict = {}
    for evaluator in evaluators:  # collectives: every rank evaluates, in the same order
        metrics.update(evaluator.evaluate())
    _add_val_loss(metrics, val_loss)
    if output_dir is not None and get_rank() == 0:
        write_evaluation_outputs(output_dir, metrics, evaluators, write_predictions)
    return metrics


def _add_val_loss(metrics: dict, val_loss: ValidationLoss | None) -> None:
    """Last in the dict, after the task blocks (a collective: every rank calls it)."""
    losses = val_loss.result() if val_loss is not None else {}
    if losses and metrics:  # metrics is {} on ranks other than 0
        metrics[VAL_LOSS] = losses


def write_evaluation_outputs(output_dir: str | Path, metrics: dict, evaluators: list[Evaluator],
                             write_predictions: bool = True) -> None:
    """metrics.json, the detection report files and predictions.json (rank 0, after ``evaluate()``)."""
    detection = next((e for e in evaluators if isinstance(e, CocoEvaluator)), None)
    write_evaluation_files(output_dir, metrics, detection)
    if detection is not None and write_predictions:
        detection.write_predictions(Path(output_dir) / PREDICTIONS)

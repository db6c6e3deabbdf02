"""Glue between config, data, model, engine and evaluation; tools/*.py are thin wrappers over it."""
from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from detseg.app.auto_sizes import settings_from_run
from detseg.config import Config, from_dict
from detseg.data.build import build_test_loader
from detseg.data.collate import collate
from detseg.utils.checkpoint import CheckpointError, load_checkpoint, load_model_weights
from detseg.engine import precision
from detseg.utils.distributed import get_rank, get_world_size, select_device
from detseg.data.sampler import InfiniteSampler
from detseg.evaluation.classification import ClassificationEvaluator
from detseg.evaluation.coco import CocoEvaluator
from detseg.evaluation.sem_seg import SemSegEvaluator
from detseg.evaluation.val_loss import ValidationLoss
from detseg.evaluation.voc import VocEvaluator
from detseg.models.build import build_model
from detseg.reports.history import VAL_LOSS
from detseg.reports.run import write_evaluation_files
from detseg.utils import json_text


def num_classes_for(cfg: Config, dataset=None) -> int:
    """``model.num_classes`` when set, else the dataset's category count."""
    if cfg.model.num_classes is not None:
        return cfg.model.num_classes
    if dataset is None:
        raise ValueError("model.num_classes is not set and there is no dataset to count categories from")
    return len(dataset.category_ids)


def build_model_for(cfg: Config, dataset=None):
    """A model to train: classes from the config or the dataset, optional ``model.weights`` to start from."""
    if (cfg.model.arch == "classifier") != (cfg.data.task == "classification"):
        raise ValueError(f"model.arch 'classifier' goes with data.task 'classification' and only with it; "
                         f"got arch '{cfg.model.arch}', task '{cfg.data.task}'")
    model = build_model(cfg.model, num_classes_for(cfg, dataset))
    if cfg.model.weights:
        load_model_weights(model, cfg.model.weights, strict=False)
    return model


def load_trained_model(cfg: Config, checkpoint: str | Path, device) -> tuple[torch.nn.Module, Config]:
    """Build the model a checkpoint was trained as; label space and names come from its stored config."""
    state = load_checkpoint(checkpoint)
    stored = state.get("config")
    settings_from_run(cfg, stored)  # "auto" sizes and an open label space: what the run derived
    if stored is not None:
        trained = from_dict(Config, stored, prefix="")
        cfg.model.num_classes = cfg.model.num_classes or trained.model.num_classes
        cfg.model.class_names = cfg.model.class_names or trained.model.class_names
    # the checkpoint holds every weight: the backbone's starting weights (a download, another run's
    # file that may be gone by now) are not needed
    model = build_model(replace(cfg.model, backbone=replace(cfg.model.backbone, weights=None)))
    weights = state["model"] if "model" in state else state
    try:
        model.load_state_dict(weights)
    except RuntimeError:  # pages of key names: say which models differ instead
        raise CheckpointError(_mismatch_message(checkpoint, stored, cfg, model, weights)) from None
    apply_test_overrides(model, cfg)
    return precision.prepare_model(model, cfg.train, device).eval(), cfg


def _mismatch_message(checkpoint, stored: dict | None, cfg: Config, model, weights: dict) -> str:
    expected = model.state_dict()
    missing = len(set(expected) - set(weights))
    unexpected = len(set(weights) - set(expected))
    reshaped = sum(1 for k, v in weights.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape))
    trained = _describe_model(from_dict(Config, stored, prefix="").model) if stored else "a model of unknown config"
    return (f"checkpoint {checkpoint} is {trained}; the config builds {_describe_model(cfg.model)} "
            f"({missing} weights missing, {unexpected} unexpected, {reshaped} of another shape): evaluate it with "
            f"the config it was trained with (its run folder's config.yaml)")


def _describe_model(model_cfg) -> str:
    backbone = model_cfg.backbone
    width = f" x{backbone.width:g}" if backbone.width != 1.0 else ""
    return f"a {model_cfg.arch} on {backbone.name}{width} with {model_cfg.num_classes} classes"


def train_loader_factory(cfg: Config, dataset):
    """``start_index -> DataLoader`` over an endless, resumable, rank-sliced sampler."""
    world = get_world_size()
    if cfg.data.batch_size % world:
        raise ValueError(f"data.batch_size {cfg.data.batch_size} must divide by the {world} processes")

    def make(start_index: int) -> DataLoader:
        sampler = InfiniteSampler(len(dataset), cfg.train.seed, True, get_rank(), world, start_index,
                                  with_seeds=True)
        return DataLoader(
            dataset, batch_size=cfg.data.batch_size // world, sampler=sampler, collate_fn=collate,
            num_workers=cfg.data.num_workers, persistent_workers=cfg.data.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    return make


@torch.no_grad()
def run_inference(model, loader, device, progress: bool = True, val_loss: ValidationLoss | None = None,
                  train_cfg=None):
    """Yields ``(batch, predictions)`` in dataset order, predictions on the CPU. With ``val_loss`` the
    model runs in "both" mode and each batch's losses are added to it (no second forward pass).
    ``train_cfg``: the config's ``train`` section, whose ``amp`` setting the forward passes follow."""
    model.eval()
    interval = 0.1 if sys.stderr.isatty() else 10.0
    for batch in tqdm(loader, desc="inference", disable=not progress, leave=False, mininterval=interval):
        with precision.autocast(train_cfg, device) if train_cfg is not None else contextlib.nullcontext():
            if val_loss is None:
                predictions = model(batch.to(device), mode="predict")
            else:
                losses, predictions = model(batch.to(device), mode="both")
                val_loss.update(losses, len(batch))
        yield batch, [p.to("cpu") for p in predictions]


def evaluate(model, dataset, cfg: Config, device, output_dir: str | Path | None = None,
             with_loss: bool = False, write_predictions: bool = True) -> dict:
    """COCO bbox metrics (and VOC mAP for VOC-format data). With ``output_dir``: metrics.json, the PR
    curves and confusion matrix (detseg.reports.run) and, when ``write_predictions``, predictions.json.
    ``with_loss`` adds a "val_loss" block (the batches must carry what the loss needs, e.g. masks).
    Semantic models (``model.task == "semantic"``) get mIoU & co. instead, see evaluate_semantic."""
    if getattr(model, "task", "detection") == "semantic":
        return evaluate_semantic(model, dataset, cfg, device, output_dir, with_loss)
    if getattr(model, "task", "detection") == "classification":
        return evaluate_classification(model, dataset, cfg, device, output_dir, with_loss)
    loader = build_test_loader(dataset, cfg.test.batch_size, min(cfg.data.num_workers, 2))
    iou_types = ("bbox", "segm") if getattr(model, "has_masks", False) else ("bbox",)
    coco_eval = CocoEvaluator(dataset.coco, dataset.category_ids, dataset.class_names, iou_types)
    voc_eval = VocEvaluator(dataset.class_names) if cfg.data.format == "voc" else None
    val_loss = ValidationLoss() if with_loss else None
    for batch, predictions in run_inference(model, loader, device, val_loss=val_loss, train_cfg=cfg.train):
        coco_eval.process(batch.image_ids, predictions)
        if voc_eval is not None:
            gts = [dataset.get_annotation(i) for i in batch.image_ids]
            voc_eval.process(batch.image_ids, predictions, gts)
    metrics = coco_eval.evaluate()
    if voc_eval is not None:
        metrics.update(voc_eval.evaluate())
    _add_val_loss(metrics, val_loss)
    if output_dir is not None and get_rank() == 0:
        write_evaluation_files(output_dir, metrics, coco_eval)
        if write_predictions:
            coco_eval.write_predictions(Path(output_dir) / "predictions.json")
    return metrics


def _add_val_loss(metrics: dict, val_loss: ValidationLoss | None) -> None:
    """Last in the dict, after the task blocks (a collective: every rank calls it)."""
    losses = val_loss.result() if val_loss is not None else {}
    if losses and metrics:  # metrics is {} on ranks other than 0
        metrics[VAL_LOSS] = losses


def evaluate_semantic(model, dataset, cfg: Config, device, output_dir: str | Path | None = None,
                      with_loss: bool = False) -> dict:
    """``{"sem_seg": {...}}`` (detseg.evaluation.sem_seg) against the stored, full-size label maps, and
    "val_loss" with ``with_loss``; writes metrics.json when asked."""
    if not getattr(dataset, "with_sem_seg", False):
        raise ValueError("a semantic model is evaluated on semantic data: set data.task=semantic")
    loader = build_test_loader(dataset, cfg.test.batch_size, min(cfg.data.num_workers, 2))
    evaluator = SemSegEvaluator(["background", *dataset.class_names])
    val_loss = ValidationLoss() if with_loss else None
    for batch, predictions in run_inference(model, loader, device, val_loss=val_loss, train_cfg=cfg.train):
        evaluator.process(predictions, [dataset.original_sem_seg(i) for i in batch.image_ids])
    scores = evaluator.evaluate()  # a collective; {} on ranks other than 0
    metrics = {"sem_seg": scores} if scores else {}
    _add_val_loss(metrics, val_loss)
    _write_metrics(output_dir, metrics)
    return metrics


def evaluate_classification(model, dataset, cfg: Config, device, output_dir: str | Path | None = None,
                            with_loss: bool = False) -> dict:
    """``{"classification": {"top1", "top5", ...}}`` (detseg.evaluation.classification), and "val_loss"
    with ``with_loss``; writes metrics.json when asked."""
    if not hasattr(dataset, "label_of"):
        raise ValueError("a classifier is evaluated on classification data: set data.task=classification")
    trained = cfg.model.class_names
    if trained and list(trained) != list(dataset.class_names):  # ImageFolder labels are sorted folder names
        raise ValueError(f"the evaluation folders' classes {list(dataset.class_names)} differ from the "
                         f"model's {list(trained)}")
    loader = build_test_loader(dataset, cfg.test.batch_size, min(cfg.data.num_workers, 2))
    evaluator = ClassificationEvaluator(model.fc.out_features)
    val_loss = ValidationLoss() if with_loss else None
    for batch, probabilities in run_inference(model, loader, device, val_loss=val_loss, train_cfg=cfg.train):
        evaluator.process(probabilities, batch.class_labels)
    scores = evaluator.evaluate()  # a collective; {} on ranks other than 0
    metrics = {"classification": scores} if scores else {}
    _add_val_loss(metrics, val_loss)
    _write_metrics(output_dir, metrics)
    return metrics


def _write_metrics(output_dir: str | Path | None, metrics: dict) -> None:
    if output_dir is not None and get_rank() == 0:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "metrics.json").write_text(json_text.dumps(metrics, indent=2))


def apply_test_overrides(model, cfg: Config) -> None:
    """``test.score_thresh`` goes to the detection head: RoI heads (two-stage) or the dense head (one-stage)."""
    if cfg.test.score_thresh is None:
        return
    for name in ("roi_heads", "head"):
        head = getattr(model, name, None)
        if head is not None and hasattr(head, "score_thresh"):
            head.score_thresh = cfg.test.score_thresh


def device_for(cfg: Config) -> torch.device:
    return select_device(cfg.train.device)

"""A training run from a config, as ``detseg train`` starts it: the run folder, the data (checked, with
auto sizes, the label space and the class weights settled), the model (optionally starting from another run's
weights), the trainer with its loggers, and the report at the end.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from detseg.app.auto_sizes import pin_label_space, resolve_auto_sizes
from detseg.app.class_weights import settle_class_weights
from detseg.app.evaluate import evaluate
from detseg.app.loaders import train_loader_factory
from detseg.app.model_loading import build_model_for, device_for, init_checkpoint, init_from, settle_model_labels
from detseg.config import Config, config_to_dict
from detseg.data.build import build_dataset
from detseg.data.check import require_clean_data
from detseg.data.errors import data_summary
from detseg.data.proposals import wrap_with_proposals
from detseg.engine import precision
from detseg.engine.run_folder import prepare_run_folder
from detseg.engine.trainer import Trainer
from detseg.evaluation.table import format_metrics_table
from detseg.models.build import trains_on_masks
from detseg.reports import write_label_statistics, write_plots_safely
from detseg.utils.cpu import describe_cpu
from detseg.utils.distributed import init_distributed, is_main_process

Say = Callable[[str], None]


@dataclass
class TrainingData:
    train: Any
    val: Any | None


def run_training(cfg: Config, resume: bool = False, overwrite: bool = False, say: Say = print,
                 init_from_run: str | None = None) -> dict:
    """Train ``cfg`` into ``cfg.train.output_dir``; returns the last evaluation's metrics. ``init_from_run``
    (a run folder or checkpoint): a new run whose model starts from those weights (see model_loading.init_from)."""
    if init_from_run and resume:
        raise ValueError("--init-from starts a new run and --resume continues one: give one of them")
    if init_from_run:
        init_checkpoint(init_from_run)  # a mistyped source is one line before any work
    init_distributed()
    main = is_main_process()
    if main:  # before any work: a finished run is not overwritten by accident
        removed = prepare_run_folder(cfg.train.output_dir, resume, overwrite)
        if removed:
            say(f"--overwrite: removed {', '.join(removed)} of the previous run in {cfg.train.output_dir}")
    data = prepare_data(cfg, say if main else _silent)
    model, device = build_model_for(cfg), device_for(cfg)
    if init_from_run:
        taken = init_from(model, init_from_run)
        if main:
            say(taken)
    if main:
        say(start_summary(cfg, data, device))
        write_label_statistics(cfg.train.output_dir, data.train)
    with mlflow_run(cfg) as loggers:
        trainer = Trainer(cfg, model, train_loader_factory(cfg, data.train), evaluation(cfg, data, device),
                          cfg.train.output_dir, loggers=loggers)
        metrics = trainer.train(resume=resume)
        if main:
            report(cfg, data, trainer, metrics, say)
    return metrics


def prepare_data(cfg: Config, say: Say) -> TrainingData:
    """Auto sizes resolved and the data checked before any transform is built (both stored in the run's
    config.yaml), the label space pinned to the training set's, proposals attached where the model reads them."""
    chosen = resolve_auto_sizes(cfg)
    if chosen:
        say("\n".join(chosen))
    if cfg.data.on_bad_sample == "error":
        require_clean_data(cfg.data)  # stop before any model is built, with the full report
    masks = trains_on_masks(cfg.model)  # a mask model's validation loss needs the masks too
    train_set = build_dataset(cfg.data, "train", train=True, with_masks=masks)
    train_set.quiet_skips = True  # undecodable images are counted in one line at the end, not warned mid-bar
    pin_label_space(cfg.data, train_set)  # val, eval and infer use the training set's classes, in its order
    has_val = cfg.data.val.ann_file or cfg.data.val.root
    val_set = build_dataset(cfg.data, "val", train=False, with_masks=masks) if has_val else None
    labelled = train_set
    train_set = wrap_with_proposals(cfg, train_set, "train")  # precomputed proposals (fast_rcnn, sppnet, rcnn)
    val_set = wrap_with_proposals(cfg, val_set, "val") if val_set is not None else None
    settle_model_labels(cfg, train_set)  # into config.yaml and the checkpoints: eval/infer need no training data
    weighting = settle_class_weights(cfg, labelled)  # solver.class_weights: auto, into config.yaml too
    if weighting:
        say(weighting)
    return TrainingData(train_set, val_set)


def evaluation(cfg: Config, data: TrainingData, device):
    """The trainer's evaluation; each also leaves metrics.json, PR curves and the confusion matrix in the run."""
    if data.val is None:
        return None
    return lambda model: evaluate(model, data.val, cfg, device, cfg.train.output_dir, with_loss=True,
                                  write_predictions=False)


@contextlib.contextmanager
def mlflow_run(cfg: Config):
    """The extra loggers the trainer writes to: an MLflow run when train.loggers names mlflow (rank 0),
    finished with the run folder's artifacts, or marked failed when training raises."""
    if "mlflow" not in cfg.train.loggers or not is_main_process():
        yield []
        return
    from detseg.reports.mlflow_run import MlflowRun

    run = MlflowRun(cfg.train.output_dir, config_to_dict(cfg), cfg.train.mlflow_tracking_uri,
                    cfg.train.mlflow_experiment)
    try:
        yield [run]
    except BaseException:
        run.finish(succeeded=False)
        raise
    run.finish(succeeded=True)
    print(f"mlflow: run {run.run_id} (experiment {cfg.train.mlflow_experiment}) in {run.uri}")


def start_summary(cfg: Config, data: TrainingData, device) -> str:
    """The run at a glance: where it writes, on what data, on which device and in which precision."""
    names = ", ".join(cfg.model.class_names or [])
    val = f"val {len(data.val)} images" if data.val is not None else "no val split"
    where = describe_cpu() if torch.device(device).type == "cpu" else str(device)
    return (f"run {cfg.train.output_dir}: train {len(data.train)} images, {val}, {cfg.model.num_classes} classes "
            f"({names}); {cfg.model.arch} on {where}, {precision.dtype_name(cfg.train, device)}")


def report(cfg: Config, data: TrainingData, trainer: Trainer, metrics: dict, say: Say) -> None:
    say(f"finished; checkpoints and logs in {cfg.train.output_dir}")
    summary = data_summary(data.train, list(trainer.skipped_images))
    if summary:
        say(summary)
    plots = write_plots_safely(cfg.train.output_dir)  # before the MLflow run takes them as artifacts
    if plots:
        say(f"plots: {', '.join(p.name for p in plots)} in {plots[0].parent}")
    if metrics:
        say(format_metrics_table(metrics))


def _silent(message: str) -> None:
    """Ranks other than 0 print nothing."""

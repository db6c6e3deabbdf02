"""Train a model: python tools/train.py CONFIG [--output-dir DIR] [--resume] [key=value ...]"""
from _common import config_parser, load, run_main, writable_folder

from detseg.utils.distributed import init_distributed, is_main_process
from detseg.engine import precision
from detseg.engine.run_folder import prepare_run_folder
from detseg.engine.trainer import Trainer
from detseg.models.build import trains_on_masks
from detseg.app.evaluate import evaluate
from detseg.app.loaders import train_loader_factory
from detseg.app.model_loading import build_model_for, device_for, settle_model_labels
from detseg.data.build import build_dataset
from detseg.data.proposals import wrap_with_proposals
from detseg.data.check import require_clean_data
from detseg.data.errors import data_summary
from detseg.app.auto_sizes import pin_label_space, resolve_auto_sizes
from detseg.reports import write_label_statistics, write_plots_safely


def main() -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--output-dir", help="run folder (default: train.output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an output folder that holds one (its checkpoints and "
                             "metrics.jsonl are replaced); without it or --resume such a folder is refused")
    args = parser.parse_intermixed_args()
    cfg = load(args)
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    init_distributed()
    if is_main_process():  # before any work: a finished run is not overwritten by accident
        writable_folder(cfg.train.output_dir)
        removed = prepare_run_folder(cfg.train.output_dir, args.resume, args.overwrite)
        if removed:
            print(f"--overwrite: removed {', '.join(removed)} of the previous run in {cfg.train.output_dir}")
    chosen = resolve_auto_sizes(cfg)  # before any transform is built; stored in the run's config.yaml
    if is_main_process() and chosen:
        print("\n".join(chosen))
    if cfg.data.on_bad_sample == "error":
        require_clean_data(cfg.data)  # stop before any model is built, with the full report
    train_set = build_dataset(cfg.data, "train", train=True, with_masks=trains_on_masks(cfg.model))
    train_set.quiet_skips = True  # undecodable images are counted in one line at the end, not warned mid-bar
    pin_label_space(cfg.data, train_set)  # val, eval and infer use the training set's classes, in its order
    # a mask model's validation loss needs the masks
    val_set = (build_dataset(cfg.data, "val", train=False, with_masks=trains_on_masks(cfg.model))
               if (cfg.data.val.ann_file or cfg.data.val.root) else None)
    train_set = wrap_with_proposals(cfg, train_set, "train")  # precomputed proposals (fast_rcnn, sppnet, rcnn)
    val_set = wrap_with_proposals(cfg, val_set, "val") if val_set is not None else None
    settle_model_labels(cfg, train_set)  # into config.yaml and the checkpoints: eval/infer need no training data
    model = build_model_for(cfg)
    device = device_for(cfg)
    if is_main_process():
        print(start_summary(cfg, train_set, val_set, device))
    run_dir = cfg.train.output_dir
    if is_main_process():
        write_label_statistics(run_dir, train_set)
    # each evaluation also leaves metrics.json, PR curves and the confusion matrix in the run folder
    evaluate_fn = ((lambda m: evaluate(m, val_set, cfg, device, run_dir, with_loss=True, write_predictions=False))
                   if val_set is not None else None)
    trainer = Trainer(cfg, model, train_loader_factory(cfg, train_set), evaluate_fn, cfg.train.output_dir)
    metrics = trainer.train(resume=args.resume)
    if is_main_process():
        print(f"finished; checkpoints and logs in {cfg.train.output_dir}")
        summary = data_summary(train_set, list(trainer.skipped_images))
        if summary:
            print(summary)
        plots = write_plots_safely(run_dir)
        if plots:
            print(f"plots: {', '.join(p.name for p in plots)} in {plots[0].parent}")
        if metrics:
            from detseg.evaluation.table import format_metrics_table

            print(format_metrics_table(metrics))
    return 0


def start_summary(cfg, train_set, val_set, device) -> str:
    """The run at a glance: where it writes, on what data, on which device and in which precision."""
    names = ", ".join(cfg.model.class_names or [])
    val = f"val {len(val_set)} images" if val_set is not None else "no val split"
    return (f"run {cfg.train.output_dir}: train {len(train_set)} images, {val}, {cfg.model.num_classes} classes "
            f"({names}); {cfg.model.arch} on {device}, {precision.dtype_name(cfg.train, device)}")


if __name__ == "__main__":
    run_main(main)

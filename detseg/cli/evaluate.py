"""Evaluate a checkpoint: detseg eval CONFIG --checkpoint CKPT [--output-dir DIR] [key=value ...]
or a run as trained:     detseg eval RUN_DIR [--output-dir DIR]  (its config.yaml and best.pt)

Prints the metric table (per-class AP and AP50 included), writes DIR/metrics.json (percent),
DIR/predictions.json (COCO results), PR curves and the confusion matrix (DIR/pr_curves.json,
DIR/confusion_matrix.json, drawn in DIR/plots);
semantic models (arch fcn) write only metrics.json, with a "sem_seg" block (mIoU, fwIoU, mACC, pACC);
classifiers (arch classifier) likewise, with a "classification" block (top1, top5).
"""
from detseg.cli.common import config_parser, load, run_checkpoint, run_main, writable_folder

from detseg.app.auto_sizes import settings_from_checkpoint
from detseg.data.build import build_dataset
from detseg.data.proposals import wrap_with_proposals
from detseg.engine.compile import compile_for_inference
from detseg.evaluation.table import format_metrics_table
from detseg.app.evaluate import evaluate
from detseg.app.model_loading import device_for, load_trained_model
from detseg.reports.run import write_plots


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--checkpoint",
                        help="detseg checkpoint (default with a run folder as CONFIG: its best.pt, else last.pt)")
    parser.add_argument("--output-dir", default=None, help="where metrics.json and predictions.json go")
    args = parser.parse_intermixed_args(argv)
    cfg = load(args)
    checkpoint = run_checkpoint(args)
    output_dir = writable_folder(args.output_dir or f"{cfg.train.output_dir}/eval")  # before evaluating
    settings_from_checkpoint(cfg, checkpoint)  # "auto" sizes and an open label space: the run's values
    dataset = build_dataset(cfg.data, "val", train=False)
    dataset = wrap_with_proposals(cfg, dataset, "val")
    device = device_for(cfg)
    # one loading path with tools/infer.py: the label space comes from the checkpoint's stored config
    model, cfg = load_trained_model(cfg, checkpoint, device)
    if cfg.test.compile:
        print(f"test.compile: compiling {', '.join(compile_for_inference(model))} (once per input shape)")
    metrics = evaluate(model, dataset, cfg, device, output_dir)
    print(format_metrics_table(metrics))
    plots = write_plots(output_dir)  # PR curves and confusion matrix (detection)
    if plots:
        print(f"plots: {', '.join(p.name for p in plots)} in {plots[0].parent}")
    written = "metrics.json" if {"sem_seg", "classification"} & set(metrics) else "metrics.json and predictions.json"
    print(f"wrote {written} to {output_dir}")
    return 0


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

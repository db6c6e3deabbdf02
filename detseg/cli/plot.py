"""Draw (again) the plots of a finished run or evaluation: python tools/plot.py DIR [--output-dir PLOTS_DIR]

DIR is a training run folder (metrics.jsonl, labels.json, metrics.json, pr_curves.json,
confusion_matrix.json) or a tools/eval.py output folder; every plot whose data is there is drawn
into DIR/plots (or PLOTS_DIR), and the per-class table of DIR/metrics.json is printed.
"""
import json
from pathlib import Path

from detseg.cli import common
from detseg.cli.common import run_main

from detseg.evaluation.table import format_metrics_table
from detseg.reports.run import METRICS, write_plots


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    parser.add_argument("folder", type=Path, help="run folder (tools/train.py) or evaluation folder (tools/eval.py)")
    common.add_renamed(parser, "--output-dir", "--out", type=Path, default=None, help="where the PNGs go (default: FOLDER/plots)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        raise FileNotFoundError(f"{args.folder} is not a folder")
    written = write_plots(args.folder, args.output_dir)
    if not written:
        raise ValueError(f"{args.folder}: nothing to plot (no metrics.jsonl, labels.json, pr_curves.json "
                         f"or confusion_matrix.json)")
    if (args.folder / METRICS).is_file():
        print(format_metrics_table(json.loads((args.folder / METRICS).read_text())))
    for path in written:
        print(path)
    return 0


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

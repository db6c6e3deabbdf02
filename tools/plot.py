"""Draw (again) the plots of a finished run or evaluation: python tools/plot.py DIR [--out PLOTS_DIR]

DIR is a training run folder (metrics.jsonl, labels.json, metrics.json, pr_curves.json,
confusion_matrix.json) or a tools/eval.py output folder; every plot whose data is there is drawn
into DIR/plots (or PLOTS_DIR), and the per-class table of DIR/metrics.json is printed.
"""
import argparse
import json
from pathlib import Path

from _common import run_main

from detseg.evaluation.table import format_metrics_table
from detseg.reports.run import METRICS, write_plots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="run folder (tools/train.py) or evaluation folder (tools/eval.py)")
    parser.add_argument("--out", type=Path, default=None, help="where the PNGs go (default: FOLDER/plots)")
    args = parser.parse_args()
    if not args.folder.is_dir():
        raise FileNotFoundError(f"{args.folder} is not a folder")
    written = write_plots(args.folder, args.out)
    if not written:
        raise ValueError(f"{args.folder}: nothing to plot (no metrics.jsonl, labels.json, pr_curves.json "
                         f"or confusion_matrix.json)")
    if (args.folder / METRICS).is_file():
        print(format_metrics_table(json.loads((args.folder / METRICS).read_text())))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    run_main(main)

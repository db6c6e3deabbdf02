"""detseg benchmark --zoo: its own arguments (no CONFIG: the zoo's configs are fixed, detseg.benchmarks.zoo)."""
from __future__ import annotations

import argparse
from pathlib import Path

from detseg.cli import common
from detseg.benchmarks.zoo import BACKBONE_AXIS, DEFAULT_DATA, ZOO_CONFIGS, ZooSettings, run_zoo
from detseg.benchmarks.zoo_report import write_zoo

USAGE = ("%(prog)s [--minutes M] [--archs rcnn,sppnet,...] [--backbones all|resnet18,...] [--output-dir DIR] [--output FILE] [--iters N] "
         "[--limit N] [--data-root DIR] [--input-size S] [--threads N] [key=value ...]")
DESCRIPTION = """Trains every architecture (or --archs) on the shapes data for M minutes of CPU each (tools/train.py with
train.max_minutes=M; the trainer fits its schedule to the budget), evaluates it on the val split, times
it and counts its parameters and FLOPs, then writes DIR/zoo.md (table), DIR/zoo.json and DIR/zoo.png
(inference ms against AP). --backbones adds the backbone axis: Faster R-CNN's shapes config with each
backbone under the same budget (its own table and DIR/zoo_backbones.png). Runs go to DIR/runs/<row>.
key=value overrides apply to every row."""


def zoo_parser() -> argparse.ArgumentParser:
    parser = common.parser(DESCRIPTION, prog="detseg benchmark --zoo", usage=USAGE)
    parser.add_argument("--zoo", action="store_true", required=True, help="this benchmark")
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget per architecture")
    parser.add_argument("--archs", default=None,
                        help=f"comma-separated subset of {','.join(ZOO_CONFIGS)} (default: all of them, or none "
                             "when --backbones is given)")
    parser.add_argument("--backbones", default="",
                        help=f"Faster R-CNN with each backbone: 'all' or a subset of {','.join(BACKBONE_AXIS)}")
    parser.add_argument("--output-dir", default="runs/zoo", help="tables, plot and one run folder per architecture")
    common.add_renamed(parser, "--output", "--json", default=None, help="also write zoo.json's content to this file")
    parser.add_argument("--iters", type=int, default=None,
                        help="train exactly N iterations instead of the --minutes budget (smoke tests)")
    common.add_renamed(parser, "--limit", "--images", type=int, default=20, help="val images timed per architecture")
    parser.add_argument("--data-root", default=str(DEFAULT_DATA), help="a shapes dataset (generated when missing)")
    common.add_renamed(parser, "--input-size", "--image-size", type=int, default=None,
                        help="train and test every architecture at this shortest side / square size")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for training and timing (default: one per core; 1 on a shared CPU)")
    parser.add_argument("overrides", nargs="*", help="key=value for every architecture's config")
    return parser


def run_zoo_cli(argv: list[str]) -> int:
    args = zoo_parser().parse_intermixed_args(argv)
    settings = ZooSettings(output_dir=Path(args.output_dir), minutes=args.minutes, iters=args.iters,
                           images=args.limit, data_root=Path(args.data_root), image_size=args.input_size,
                           threads=args.threads, overrides=args.overrides)
    backbones = list(BACKBONE_AXIS) if args.backbones == "all" else _names(args.backbones)
    archs = _names(args.archs) if args.archs is not None else ([] if backbones else list(ZOO_CONFIGS))
    report = run_zoo(archs, settings, backbones=backbones)
    for path in write_zoo(report, settings.output_dir, args.output):
        print(f"wrote {path}")
    print(Path(settings.output_dir, "zoo.md").read_text())
    failed = [r["arch"] for r in report["rows"] if "error" in r]
    if failed:
        print(f"failed: {', '.join(failed)} (see {settings.output_dir}/runs/<arch>/train.log)")
    return 1 if failed else 0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]

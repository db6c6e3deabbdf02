"""detseg benchmark --compare-torchvision: the parser and the run; the measuring lives in detseg.benchmarks."""
from __future__ import annotations

import json
from pathlib import Path

from detseg.cli import common

DESCRIPTION = """detseg against torchvision in one run, each number with its goal and PASS/MISS:
1. training img/s and batch-1 latency of Faster / Mask R-CNN R50-FPN (512x512) and SSD300, interleaved
   rounds, medians per side; 2. Faster R-CNN inference time over its backbone+neck alone, with a breakdown;
3. pycocotools vs faster_coco_eval on a synthetic COCO set (speed, identical stats); 4. data wait in short
real trainings of the shapes configs; 5. peak RSS of training, each side in a fresh process; 6. on CUDA,
Faster R-CNN at 800x1333 with bf16 autocast and channels_last on both sides."""


def run_compare_cli(argv: list[str]) -> int:
    parser = common.parser(DESCRIPTION, prog="detseg benchmark --compare-torchvision",
                           usage="%(prog)s [--iters N] [--compile] [--quick] [--output FILE] [--shapes DIR]")
    parser.add_argument("--compare-torchvision", action="store_true", required=True, help="this comparison")
    parser.add_argument("--iters", type=int, default=5, help="interleaved timing rounds per side")
    parser.add_argument("--compile", action="store_true",
                        help="also time detseg's inference with test.compile (inductor, frozen weights; compiling "
                             "takes about a minute per model on 2 cores and is not timed)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and counts (tests; numbers not comparable)")
    common.add_renamed(parser, "--output", "--json", default=None,
                       help="also write every number, goal and pass/fail to this JSON file")
    parser.add_argument("--shapes", default="data/shapes",
                        help="shapes dataset for the data-wait trainings (made with tools/make_dataset.py if missing)")
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error("--iters must be at least 1")

    from detseg.benchmarks.report import format_report
    from detseg.benchmarks.suite import run_suite

    results = run_suite(rounds=args.iters, quick=args.quick, say=lambda message: print(message, flush=True),
                        shapes=Path(args.shapes).resolve(), compiled=args.compile)
    print(format_report(results))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2)
    return 0

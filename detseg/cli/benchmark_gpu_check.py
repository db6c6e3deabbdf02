"""detseg benchmark --gpu-check: the parser and the run; the steps live in detseg/benchmarks/gpu_check.py."""
from __future__ import annotations

from pathlib import Path

from detseg.cli import common

DESCRIPTION = """Everything detseg claims about CUDA in one run of at most --budget-minutes (8), each step in its own
process with its own time limit, a failed or timed-out step recorded while the others still run:
1. the tests marked cuda; 2. Faster and Mask R-CNN R50-FPN at 800x1333, bf16 autocast and channels_last,
training and inference img/s and peak CUDA memory beside torchvision's in the same run, against the H100
goals (>= 40 train, >= 60 infer img/s, >= 1.3x torchvision); 3. the shapes dataset; 4. a 2-minute shapes
training (configs/faster_rcnn/shapes.yaml) and its box AP. Writes OUTPUT_DIR/gpu_check.json, gpu_check.md
(the table for docs/gpu.md) and logs/<step>.log. On a machine without network, tools/gpu_check.sh installs
the wheels `make gpu-wheels` prepared, then runs this (docs/gpu.md)."""


def run_gpu_check_cli(argv: list[str]) -> int:
    parser = common.parser(DESCRIPTION, prog="detseg benchmark --gpu-check",
                           usage="%(prog)s [--output-dir DIR] [--budget-minutes M] [--batch-size N] [--dry-run]")
    parser.add_argument("--gpu-check", action="store_true", required=True, help="this check")
    parser.add_argument("--output-dir", default="runs/gpu_check", help="gpu_check.json, gpu_check.md, logs/")
    parser.add_argument("--budget-minutes", type=float, default=8.0, help="all steps together")
    parser.add_argument("--batch-size", type=int, default=8, help="the benchmark's images per training step")
    parser.add_argument("--dry-run", action="store_true",
                        help="every step shrunk to seconds on the CPU (the CUDA tests collected and skipped)")
    args = parser.parse_args(argv)
    if args.budget_minutes <= 0 or args.batch_size < 1:
        parser.error("--budget-minutes must be positive and --batch-size at least 1")

    from detseg.benchmarks.gpu_check import format_table, run_check

    out = common.writable_folder(args.output_dir)
    report = run_check(out.resolve(), args.dry_run, args.budget_minutes * 60, args.batch_size,
                       say=lambda message: print(message, flush=True))
    print(format_table(report))
    print(f"wrote {out / 'gpu_check.json'}")
    failed = [name for name, step in report["steps"].items() if step["status"] != "ok"]
    if failed:
        print(f"not ok: {', '.join(failed)} (see {out}/logs/<step>.log)")
    return 1 if failed else 0

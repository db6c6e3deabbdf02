"""Generate datasets for detseg.

    python tools/make_dataset.py shapes --out data/shapes [--num-train 2000] [--num-val 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def _add_shapes_parser(subparsers) -> None:
    parser = subparsers.add_parser("shapes", help="synthetic shapes, COCO + VOC layout (boxes and semantic PNGs)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-val", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-size", type=int, default=160, help="smallest image side, px")
    parser.add_argument("--max-size", type=int, default=256, help="largest image side, px")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.set_defaults(func=_run_shapes)


def _run_shapes(args: argparse.Namespace) -> None:
    from detseg.data.datasets.shapes import generate_shapes_dataset

    start = time.perf_counter()
    summary = generate_shapes_dataset(args.out, args.num_train, args.num_val, args.seed,
                                      args.min_size, args.max_size, workers=args.workers)
    for split, counts in summary.items():
        print(f"{split}: {counts['images']} images, {counts['annotations']} objects")
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="dataset", required=True)
    _add_shapes_parser(subparsers)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

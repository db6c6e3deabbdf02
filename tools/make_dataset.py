"""Generate datasets for detseg.

    python tools/make_dataset.py shapes --out data/shapes [--num-train 2000] [--num-val 300] [--seed 0]
    python tools/make_dataset.py shape-crops --out data/shape_crops [--num-train 1500] [--num-val 300]
        [--crop-size 64] [--context 0.5] [--seed 0]   (one object per image, ImageFolder layout)
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


def _add_shape_crops_parser(subparsers) -> None:
    parser = subparsers.add_parser("shape-crops", help="one shapes object per image, ImageFolder layout "
                                   "(train/<class>/*.jpg, val/<class>/*.jpg) for classification pre-training")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--num-train", type=int, default=1500, help="rendered images (1 to 6 crops each)")
    parser.add_argument("--num-val", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crop-size", type=int, default=64, help="side of the square crops, px")
    parser.add_argument("--context", type=float, default=0.5, help="crop side = (1 + context) x object's longer side")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.set_defaults(func=_run_shape_crops)


def _run_shape_crops(args: argparse.Namespace) -> None:
    from detseg.data.datasets.shape_crops import generate_shape_crops

    start = time.perf_counter()
    summary = generate_shape_crops(args.out, args.num_train, args.num_val, args.seed, args.crop_size,
                                   args.context, workers=args.workers)
    for split, counts in summary.items():
        per_class = ", ".join(f"{name} {n}" for name, n in counts.items())
        print(f"{split}: {sum(counts.values())} crops ({per_class})")
        if 0 in counts.values() and sum(counts.values()):
            print(f"warning: {split} has class folders without crops, which training refuses; "
                  f"render more images (--num-{split})")
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="dataset", required=True)
    _add_shapes_parser(subparsers)
    _add_shape_crops_parser(subparsers)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

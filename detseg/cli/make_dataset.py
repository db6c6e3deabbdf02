"""Generate datasets for detseg.

    python tools/make_dataset.py shapes --output-dir data/shapes [--num-train 2000] [--num-val 300] [--seed 0]
    python tools/make_dataset.py shape-crops --output-dir data/shape_crops [--num-train 1500] [--num-val 300]
        [--crop-size 64] [--context 0.5] [--seed 0]   (one object per image, ImageFolder layout)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from detseg.cli import common


def _add_shapes_parser(subparsers) -> None:
    parser = subparsers.add_parser("shapes", formatter_class=common.HelpFormatter, help="synthetic shapes, COCO + VOC layout (boxes and semantic PNGs)")
    common.add_renamed(parser, "--output-dir", "--out", required=True, type=Path, help="output folder")
    parser.add_argument("--num-train", type=int, default=2000, help="training images")
    parser.add_argument("--num-val", type=int, default=300, help="validation images")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same dataset")
    parser.add_argument("--min-size", type=int, default=160, help="smallest image side, px")
    parser.add_argument("--max-size", type=int, default=256, help="largest image side, px")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.set_defaults(func=_run_shapes)


def _run_shapes(args: argparse.Namespace) -> None:
    from detseg.data.datasets.shapes import generate_shapes_dataset

    start = time.perf_counter()
    summary = generate_shapes_dataset(args.output_dir, args.num_train, args.num_val, args.seed,
                                      args.min_size, args.max_size, workers=args.workers)
    for split, counts in summary.items():
        print(f"{split}: {counts['images']} images, {counts['annotations']} objects")
    print(f"wrote {args.output_dir} in {time.perf_counter() - start:.1f} s")


def _add_shape_crops_parser(subparsers) -> None:
    parser = subparsers.add_parser("shape-crops", formatter_class=common.HelpFormatter, help="one shapes object per image, ImageFolder layout "
                                   "(train/<class>/*.jpg, val/<class>/*.jpg) for classification pre-training")
    common.add_renamed(parser, "--output-dir", "--out", required=True, type=Path, help="output folder")
    parser.add_argument("--num-train", type=int, default=1500, help="rendered images (1 to 6 crops each)")
    parser.add_argument("--num-val", type=int, default=300, help="validation images rendered")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same dataset")
    parser.add_argument("--crop-size", type=int, default=64, help="side of the square crops, px")
    parser.add_argument("--context", type=float, default=0.5, help="crop side = (1 + context) x object's longer side")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.set_defaults(func=_run_shape_crops)


def _run_shape_crops(args: argparse.Namespace) -> None:
    from detseg.data.datasets.shape_crops import generate_shape_crops

    start = time.perf_counter()
    summary = generate_shape_crops(args.output_dir, args.num_train, args.num_val, args.seed, args.crop_size,
                                   args.context, workers=args.workers)
    for split, counts in summary.items():
        per_class = ", ".join(f"{name} {n}" for name, n in counts.items())
        print(f"{split}: {sum(counts.values())} crops ({per_class})")
        if 0 in counts.values() and sum(counts.values()):
            print(f"warning: {split} has class folders without crops, which training refuses; "
                  f"render more images (--num-{split})")
    print(f"wrote {args.output_dir} in {time.perf_counter() - start:.1f} s")


def _add_digits_parser(subparsers) -> None:
    parser = subparsers.add_parser("digits", formatter_class=common.HelpFormatter,
                                   help="scikit-learn's 8x8 handwritten digits, upsampled, ImageFolder layout "
                                        "(LeNet-5: configs/classification/digits_lenet5.yaml)")
    parser.add_argument("--output-dir", required=True, type=Path, help="output folder")
    parser.add_argument("--input-size", type=int, default=32, help="side of the upsampled images, px")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of each digit held out")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same split")
    parser.set_defaults(func=_run_digits)


def _run_digits(args: argparse.Namespace) -> None:
    from detseg.data.datasets.digits import write_digits

    summary = write_digits(args.output_dir, args.input_size, args.val_fraction, args.seed)
    for split, counts in summary.items():
        print(f"{split}: {sum(counts.values())} images of {len(counts)} digits")
    print(f"wrote {args.output_dir}")


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    subparsers = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET", help="shapes, shape-crops or digits")
    _add_shapes_parser(subparsers)
    _add_shape_crops_parser(subparsers)
    _add_digits_parser(subparsers)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


def run(argv: list[str] | None = None) -> None:
    common.run_main(main, argv)

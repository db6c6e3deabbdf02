"""Convert a detection dataset between COCO json, Pascal VOC xml and YOLO txt:

    python tools/convert_dataset.py --from coco --to yolo --input data/shapes --output-dir data/shapes_yolo
    python tools/convert_dataset.py --from coco --to voc --input ann.json --image-dir images --output-dir out_voc

Layouts (--input / --output-dir are dataset roots):
  coco  annotations/instances_{split}.json + {split}/ images (or --input FILE.json --image-dir DIR)
  voc   JPEGImages/, Annotations/*.xml, ImageSets/Main/{split}.txt, classes.txt (label order)
  yolo  data.yaml (names), images/{split}/, labels/{split}/*.txt

The input is only read. The output must be a separate folder, empty unless --overwrite. Images
are copied (or hard-linked with --image-mode link), never re-encoded. See detseg/data/convert.
"""
import argparse
import time
from pathlib import Path

from detseg.cli import common
from detseg.cli.common import run_main

from detseg.data.convert import FORMATS, convert
from detseg.data.convert.files import IMAGE_MODES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = common.parser(__doc__)
    parser.add_argument("--from", dest="src", required=True, choices=FORMATS, help="format of --input")
    parser.add_argument("--to", dest="dst", required=True, choices=FORMATS, help="format to write")
    parser.add_argument("--input", required=True, type=Path, help="dataset root (COCO: also a .json file)")
    common.add_renamed(parser, "--output-dir", "--output", required=True, type=Path, help="new dataset root")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="splits to convert (default: all found; with a COCO .json: the name it gets)")
    parser.add_argument("--image-dir", type=Path, default=None, help="COCO .json input: its image folder")
    parser.add_argument("--classes", nargs="+", default=None,
                        help="VOC input: label order (default: classes.txt, else sorted names)")
    parser.add_argument("--image-mode", choices=IMAGE_MODES, default="copy",
                        help="copy images, or hard-link them (falls back to a copy across file systems)")
    parser.add_argument("--no-masks", action="store_true",
                        help="write boxes only (YOLO: 'class cx cy w h' lines even when masks exist)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --output-dir")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out annotations and images that training would drop (data.on_bad_sample=skip) "
                             "instead of stopping; they are counted (see tools/check_dataset.py)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    summary = convert(args.src, args.dst, args.input, args.output_dir, args.splits, args.image_dir, args.classes,
                      args.image_mode, not args.no_masks, args.overwrite,
                      "skip" if args.skip_bad else "error")
    for split, (images, objects) in summary.splits.items():
        print(f"{split}: {images} images, {objects} objects")
    print(f"{len(summary.class_names)} classes: {', '.join(summary.class_names)}")
    if summary.left_out:
        print(f"left out {summary.left_out} crowd/difficult objects ({args.dst} has no ignore flag)")
    masks = "with masks" if summary.masks_written else "boxes only"
    print(f"wrote {args.dst} dataset ({masks}) to {args.output_dir} in {time.perf_counter() - start:.1f} s")
    return 0


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

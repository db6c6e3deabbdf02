"""Check a dataset before training: python tools/check_dataset.py CONFIG [--split train|val] [--decode] [key=value ...]

Reads every annotation and image header (never writes anything) and prints a report, with the same
rules training applies (detseg/data/box_rules.py): missing, empty, unreadable or truncated images
(a JPEG is truncated only if it does not decode), sizes that disagree with the annotations, EXIF
orientation (applied, or ignored when invalid), bad, degenerate or outside boxes (dropped in
training), boxes clipped at the border, exact duplicate boxes, a VOC <size> that disagrees with the
image (the image's is used), bad polygons and RLEs, unknown categories, duplicate ids, images without
(or with only crowd) annotations, and the number of annotations per class. Each item names the VOC xml
file or the COCO image file and annotation id. Exit code 1 on errors (what training would drop).
"""
from detseg.cli.common import config_parser, load, run_main

from detseg.data.check import check_split


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--split", choices=("train", "val"), default="train", help="which of data.train / data.val")
    parser.add_argument("--decode", action="store_true", help="also decode every image (slower, finds more)")
    args = parser.parse_intermixed_args(argv)
    cfg = load(args)
    report = check_split(cfg.data, args.split, decode=args.decode)
    print(report.text())
    return 0 if report.ok else 1


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

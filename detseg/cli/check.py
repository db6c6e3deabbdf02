"""Check a dataset before training: detseg check CONFIG [--split train|val] [--decode] [--output FILE] [--fix-splits OUT_DIR] [key=value ...]

Per file, for data.train and data.val (or the one --split names), with the rules training applies
(detseg/data/box_rules.py): missing, empty, unreadable or truncated images (a JPEG is truncated only
if it does not decode), sizes that disagree with the annotations, EXIF orientation (applied, or
ignored when invalid), bad, degenerate or outside boxes (dropped in training), boxes clipped at the
border, exact duplicate boxes, a VOC <size> that disagrees with the image (the image's is used), bad
polygons and RLEs, unknown categories, duplicate ids, images without (or with only crowd)
annotations, and the number of annotations per class. Each item names the VOC xml file or the COCO
image file and annotation id.

Then the dataset doctor, over the whole dataset (detseg/data/doctor): exact (same bytes) and
near-duplicate (perceptual hash) images within a split and across train/val (leakage), images
without annotations, class counts and imbalance, categories used but undefined or defined but
unused, a label space that differs between train and val, and, for models with an RPN, the share
of boxes whose best anchor reaches IoU 0.5 and 0.7 at the test input scale ("auto" sizes resolved
from the training set as training would).

Exit code 1 on errors (what training would drop); the doctor's findings are warnings. Reads the
data and never writes it: --output writes the report as JSON, --fix-splits split files without the
leaked val images into a new folder.
"""
from __future__ import annotations

import copy
import warnings

from detseg.cli.common import config_parser, load, run_main

from detseg.data.check import check_split, check_split_or_unreadable, configured_splits
from detseg.data.doctor import AnchorSetup, diagnose, split_inventory, write_fixed_splits
from detseg.data.errors import DatasetError
from detseg.utils.files import atomic_write_text
from detseg.utils.json_text import dumps

RPN_ARCHS = ("faster_rcnn", "mask_rcnn")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_intermixed_args(argv)
    cfg = load(args)
    if args.fix_splits and args.split:
        raise ValueError("--fix-splits needs both splits: leave out --split")
    reports = _per_file_reports(cfg.data, args.split, args.decode)
    print("\n".join(r.text() for r in reports.values()))
    doctor = _doctor(cfg, reports)
    print(doctor.text())
    fixed = _fix_splits(cfg.data, doctor, args.fix_splits) if args.fix_splits else []
    if fixed:
        print("\n".join(fixed))
    if args.output:
        result = {"splits": {s: r.to_dict() for s, r in reports.items()}, "doctor": doctor.to_dict(),
                  "fix_splits": fixed, "ok": all(r.ok for r in reports.values())}
        atomic_write_text(args.output, dumps(result, indent=2) + "\n")
    return 0 if all(r.ok for r in reports.values()) else 1


def _parser():
    parser = config_parser(__doc__)
    parser.add_argument("--split", choices=("train", "val"), default=None,
                        help="check only data.train or data.val (default: both, val where the config sets it)")
    parser.add_argument("--decode", action="store_true", help="also decode every image (slower, finds more)")
    parser.add_argument("--output", metavar="FILE", help="also write the report as JSON to FILE")
    parser.add_argument("--fix-splits", metavar="OUT_DIR",
                        help="write train/val split files without the val images that duplicate train images "
                             "into OUT_DIR (a new or empty folder; the dataset's files are never changed)")
    return parser


def _per_file_reports(data_cfg, split: str | None, decode: bool) -> dict:
    if split is not None:  # the split asked for: a file that cannot be read is the command's error, as ever
        return {split: check_split(data_cfg, split, decode)}
    return {s: check_split_or_unreadable(data_cfg, s, decode) for s in configured_splits(data_cfg)}


def _doctor(cfg, reports: dict):
    readable = [s for s, r in reports.items() if "unreadable_split" not in r.problems]
    inventories = {s: split_inventory(cfg.data, s) for s in readable}
    setup, note = _anchor_setup(cfg) if "train" in readable else (None, "not computed: data.train is unreadable")
    return diagnose(inventories, {s: reports[s].histogram for s in readable}, setup, note)


def _anchor_setup(cfg) -> tuple[AnchorSetup | None, str | None]:
    """The RPN's anchors and the test resize of the config as training resolves it ("auto" sizes from
    the training set), or why there is none."""
    from detseg.app.auto_sizes import resolve_auto_sizes

    if cfg.model.arch not in RPN_ARCHS or cfg.model.proposals.source != "rpn" or cfg.data.task != "detection":
        return None, f"not computed: model.arch '{cfg.model.arch}' has no RPN anchors"
    resolved = copy.deepcopy(cfg)
    resolved.data.on_bad_sample = "skip"  # sizes from the boxes training keeps; the errors are reported above
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            resolve_auto_sizes(resolved)
    except (DatasetError, ValueError) as exc:
        return None, f"not computed: the 'auto' sizes cannot be derived ({exc})"
    data, rpn = resolved.data, resolved.model.rpn
    return AnchorSetup(rpn.anchor_sizes, rpn.aspect_ratios, data.min_size_test, data.max_size_test,
                       data.fixed_size), None


def _fix_splits(data_cfg, doctor, out_dir: str) -> list[str]:
    if set(doctor.splits) != {"train", "val"}:
        raise ValueError("--fix-splits needs readable data.train and data.val")
    return write_fixed_splits(data_cfg, doctor.leaked_val_keys, out_dir)


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

"""Draw the ground truth after the training transforms, as the model sees it:
python tools/browse_dataset.py CONFIG [--split train|val] --output-dir DIR [--limit N] [--overwrite] [key=value ...]

Writes DIR/<position>_<image id>.jpg: the transformed image with its boxes and class names (and instance
masks for Mask R-CNN configs, the semantic map for data.task=semantic). train: the first N samples a
single-process training run draws, with their augmentation; val: the first N in evaluation order.
"""
import sys
from pathlib import Path

import cv2
from detseg.cli.common import config_parser, load, run_main, writable_folder
from tqdm import tqdm

from detseg.reports.browse import browse_keys, build_browse_dataset, draw_ground_truth


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--split", choices=("train", "val"), default="train", help="which of data.train / data.val")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder for the drawn samples")
    parser.add_argument("--limit", type=int, default=20, help="draw this many samples (default 20)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing pictures in --output-dir")
    args = parser.parse_intermixed_args(argv)
    cfg = load(args)
    dataset = build_browse_dataset(cfg, args.split)
    keys = browse_keys(len(dataset), args.split, cfg.train.seed, args.limit)
    writable_folder(args.output_dir)
    objects = 0
    for position, key in enumerate(tqdm(keys, desc="browse", mininterval=1.0 if sys.stderr.isatty() else 30.0)):
        sample = dataset[key]
        target = args.output_dir / f"{position:04d}_{sample['image_id']}.jpg"
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
        drawn = draw_ground_truth(sample, list(dataset.class_names))
        cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        objects += len(sample["labels"])
    print(f"{len(keys)} {args.split} samples ({objects} objects) drawn to {args.output_dir}")
    return 0


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

"""Build the proposal cache ahead of training: python tools/proposals.py CONFIG [--split train|val] [key=value ...]

Training and evaluation build it on demand when it is missing; this only does the work up front
(and prints per-image counts). Uses model.proposals.* (source, mode, max_proposals, cache_dir, workers).
"""
from pathlib import Path

from detseg.cli.common import config_parser, load, run_main

from detseg.data.build import build_dataset
from detseg.data.proposals import proposals_for, uses_precomputed


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--split", choices=["train", "val"], action="append",
                        help="split(s) to build (default: both)")
    args = parser.parse_intermixed_args(argv)
    cfg = load(args)
    if not uses_precomputed(cfg.model.proposals):
        raise ValueError("model.proposals.source is 'rpn': this config computes its proposals in the model")
    cache_dir = cfg.model.proposals.cache_dir or str(Path(cfg.train.output_dir) / "proposals")
    for split in args.split or ["train", "val"]:
        dataset = build_dataset(cfg.data, split, train=False)
        proposals = proposals_for(cfg.model.proposals, dataset, split, cache_dir)
        counts = [len(proposals.get(int(i), ())) for i in dataset.image_ids]
        empty = sum(c == 0 for c in counts)
        print(f"{split}: {len(counts)} images, proposals per image min {min(counts, default=0)} / mean "
              f"{sum(counts) / max(len(counts), 1):.0f} / max {max(counts, default=0)}"
              + (f"; {empty} images have none" if empty else "") + f" (cache in {cache_dir})")
    return 0


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

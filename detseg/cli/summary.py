"""Per-layer anatomy of a model: output shape, parameters, FLOPs, stride and receptive field.

python tools/summary.py CONFIG [key=value ...] [--input-size H W] [--depth N] [--output FILE]
python tools/summary.py --backbone NAME [--with-classifier] [--input-size H W] [--depth N] [--output FILE]

CONFIG: the config's whole model (random weights) in predict mode on one synthetic H x W image
(default: data.min_size_test square); R-CNN, SPPnet and Fast R-CNN get --proposals random boxes.
--backbone: a detseg backbone (alexnet_v1, vgg16, resnet50, ...: what a detector builds on), or with
--with-classifier its full ImageNet classification network; any other torchvision classification name
(vgg19, inception_v3, resnet152, ...) is summarised whole. Default input: 224 (alexnet_v1: 227).
A named network runs on PyTorch's meta device: shapes, parameters and FLOPs need no values, so even
VGG-19 takes no time or memory; a config's model runs on the CPU (its post-processing reads values).

FLOPs: torch.utils.flop_counter.FlopCounterMode, 2 per multiply-add of convs and matrix products.
Stride and RF: the theoretical receptive field (see detseg/analysis/receptive_field.py).
"""
import json

import torch
from detseg.cli import common
from detseg.cli.common import config_parser, load, run_main

from detseg.analysis import summarize
from detseg.analysis.networks import (
    build_config_model,
    build_named_network,
    native_size,
    reads_precomputed_proposals,
    synthetic_batch,
)
from detseg.analysis.report import format_summary


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__, config_required=False)
    parser.add_argument("--backbone", default=None, help="a backbone or classification network name (see above)")
    parser.add_argument("--with-classifier", action="store_true", help="--backbone: the full classification network")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="input image size (default: see above)")
    parser.add_argument("--depth", type=int, default=None, help="one row per module at this depth (default: leaves)")
    parser.add_argument("--proposals", type=int, default=16, help="boxes per image for models that read proposals")
    common.add_renamed(parser, "--output", "--json", default=None, help="also write the rows and totals to this JSON file")
    args = parser.parse_intermixed_args(argv)
    if args.backbone and (args.config or args.overrides):
        parser.error(f"--backbone NAME takes no CONFIG or key=value overrides, got {[args.config, *args.overrides]}")
    if not args.backbone and not args.config:
        parser.error("give either a CONFIG or --backbone NAME")
    if args.with_classifier and not args.backbone:
        parser.error("--with-classifier goes with --backbone NAME")
    title, model, example = _named(args) if args.backbone else _from_config(args)
    summary = summarize(model, example, max_depth=args.depth)
    print(title)
    print(format_summary(summary))
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"model": title, **summary.to_dict()}, f, indent=2)
    return 0


def _named(args):
    height, width = args.input_size or (native_size(args.backbone),) * 2
    with torch.device("meta"):
        model = build_named_network(args.backbone, args.with_classifier)
    return args.backbone, model, torch.zeros(1, 3, height, width, device="meta")


def _from_config(args):
    cfg = load(args)
    height, width = args.input_size or (cfg.data.min_size_test,) * 2
    torch.manual_seed(0)
    model = build_config_model(cfg)
    proposals = args.proposals if reads_precomputed_proposals(cfg.model) else None
    title = f"{args.config} (model.arch {cfg.model.arch}, {cfg.model.num_classes or 80} classes, predict mode)"
    return title, model, synthetic_batch(height, width, proposals)


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

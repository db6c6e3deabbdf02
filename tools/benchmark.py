"""Training and inference throughput of a config's model, beside torchvision's equivalent:

python tools/benchmark.py CONFIG [--size 320] [--batch-size 2] [--iters 5] [--device cpu] [--json FILE] [key=value ...]

Both models see the same synthetic images at SIZE x SIZE (a size torchvision's internal resize
leaves unchanged), so the ratio compares the models, not their pre-processing.
"""
import json

import torch
from _common import config_parser, load, run_main

from detseg.benchmark import measure_detseg, measure_torchvision, synthetic_images
from detseg.models.build import build_model
from detseg.models.torchvision_twin import torchvision_twin


def main() -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--size", type=int, default=320, help="square input side in pixels")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations after warm-up")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_intermixed_args()
    cfg = load(args)
    if cfg.model.arch != "faster_rcnn":
        raise ValueError(f"tools/benchmark.py times faster_rcnn configs; model.arch '{cfg.model.arch}' reads "
                         "precomputed proposals, which synthetic inputs do not have yet")
    cfg.model.backbone.weights = None  # timing needs no trained weights (and no download)
    torch.manual_seed(0)
    num_classes = cfg.model.num_classes or 80
    images, targets = synthetic_images(max(args.batch_size, 4), args.size)
    results = {"config": args.config, "size": args.size, "batch_size": args.batch_size, "device": args.device,
               "threads": torch.get_num_threads()}
    model = build_model(cfg.model, num_classes)
    results["detseg"] = vars(measure_detseg(model, images, targets, args.batch_size, args.iters))
    twin = torchvision_twin(cfg.model, num_classes, args.size)
    if twin is not None:
        results["torchvision"] = vars(measure_torchvision(twin, images, targets, args.batch_size, args.iters))
        results["ratio"] = {k: results["detseg"][k] / results["torchvision"][k] for k in ("train_ips", "infer_ips")}
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def print_table(results: dict) -> None:
    print(f"{results['config']} at {results['size']}x{results['size']}, train batch {results['batch_size']}, "
          f"{results['device']} ({results['threads']} threads)")
    print(f"{'model':<12} {'train img/s':>12} {'infer img/s':>12}")
    for name in ("detseg", "torchvision"):
        if name in results:
            r = results[name]
            print(f"{name:<12} {r['train_ips']:>12.2f} {r['infer_ips']:>12.2f}")
    if "ratio" in results:
        r = results["ratio"]
        print(f"{'ratio':<12} {r['train_ips']:>11.2f}x {r['infer_ips']:>11.2f}x   (detseg / torchvision)")
    else:
        print("torchvision has no equivalent of this model")


if __name__ == "__main__":
    run_main(main)

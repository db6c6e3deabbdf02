"""Training and inference throughput of a config's model, beside torchvision's equivalent:

detseg benchmark CONFIG [--input-size 320] [--batch-size 2] [--iters 5] [--device cpu] [--output FILE]
                 [--baseline CONFIG2] [key=value ...]

Both models see the same synthetic images at SIZE x SIZE (--input-size) (a size torchvision's internal resize
leaves unchanged: 300 for SSD300, 320 for SSDlite320), so the ratio compares the models, not their
pre-processing. --baseline times a second detseg config on the same inputs, e.g. the Faster R-CNN
on the same backbone beside a one-stage model (configs/faster_rcnn/voc_vgg16.yaml beside SSD300).

--lineage [--limit N]: R-CNN, SPPnet, Fast R-CNN and Faster R-CNN (the configs of CONFIG's file name
under configs/{rcnn,sppnet,fast_rcnn,faster_rcnn}/) on the same validation images: per-image test time
of the convolutional part, of the model with proposals given, and with selective search included, and
the speed-ups over R-CNN, e.g. detseg benchmark configs/fast_rcnn/shapes.yaml --lineage.
--rcnn-warp 227 times R-CNN at the papers' warp (227 px, 16 px context) instead of its config's (the
shapes config trains at 64 px): R-CNN's cost grows with the warped area, the other three do not change.

--zoo: every architecture trained and evaluated on the shapes data under one CPU budget, in one table
(zoo.md, zoo.json, zoo.png); detseg benchmark --zoo --help

--compare-torchvision [--iters ROUNDS] [--quick] [--output FILE] (no CONFIG): detseg against torchvision on
speed, overhead over the backbone, COCO evaluation backends, data wait, peak memory (and 800x1333 bf16 on
CUDA), each number with its goal and PASS/MISS; detseg benchmark --compare-torchvision --help

--gpu-check [--dry-run] [--output-dir DIR] (no CONFIG): the CUDA tests, the 800x1333 GPU benchmark and a 2-minute
shapes training in at most 8 minutes, into one JSON (tools/gpu_check.sh, docs/gpu.md); detseg benchmark --gpu-check --help
"""
import json
import sys

import torch

from detseg.cli import common
from detseg.cli.common import config_parser, load, run_main
from detseg.config import load_config
from detseg.benchmarks.throughput import measure_detseg, measure_torchvision, measure_torchvision_segmentation, synthetic_images
from detseg.models.build import build_model, trains_on_masks
from detseg.interop.torchvision_twin import torchvision_twin


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--zoo" in argv:  # no CONFIG: a parser of its own
        from detseg.cli.benchmark_zoo import run_zoo_cli

        return run_zoo_cli(argv)
    if "--compare-torchvision" in argv:  # no CONFIG either
        from detseg.cli.benchmark_compare import run_compare_cli

        return run_compare_cli(argv)
    if "--gpu-check" in argv:  # no CONFIG either
        from detseg.cli.benchmark_gpu_check import run_gpu_check_cli

        return run_gpu_check_cli(argv)
    args = build_parser().parse_intermixed_args(argv)
    if args.lineage:
        return run_lineage_benchmark(args)
    results = measure_config(args)
    print_table(results)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def build_parser():
    parser = config_parser(__doc__)
    common.add_renamed(parser, "--input-size", "--size", type=int, default=320, help="square input side in pixels")
    parser.add_argument("--batch-size", type=int, default=2, help="images per training step")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations after warm-up")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    common.add_renamed(parser, "--output", "--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--baseline", default=None, help="another detseg config timed on the same inputs")
    parser.add_argument("--lineage", action="store_true", help="time the four region-based models (see above)")
    common.add_renamed(parser, "--limit", "--images", type=int, default=4, help="--lineage: validation images timed")
    parser.add_argument("--trained", action="store_true",
                        help="--lineage: load each config's <train.output_dir>/last.pt (default: random weights)")
    parser.add_argument("--proposals", type=int, default=None,
                        help="--lineage: exactly this many boxes per image (selective search's, topped up with "
                             "random boxes: simple synthetic images give far fewer than a photo's ~2000)")
    parser.add_argument("--rcnn-warp", type=int, default=None,
                        help="--lineage: R-CNN's warp size (context padding scaled from the papers' 16 at 227)")
    return parser


def measure_config(args) -> dict:
    """The config's model and torchvision's twin (and --baseline) timed on the same synthetic inputs."""
    cfg = load(args)
    _check_timeable(cfg)
    cfg.model.backbone.weights = None  # timing needs no trained weights (and no download)
    torch.manual_seed(0)
    num_classes = cfg.model.num_classes or 80
    images, targets = synthetic_images(max(args.batch_size, 4), args.input_size, with_masks=trains_on_masks(cfg.model))
    results = {"config": args.config, "size": args.input_size, "batch_size": args.batch_size, "device": args.device,
               "threads": torch.get_num_threads()}
    model = build_model(cfg.model, num_classes)
    results["detseg"] = vars(measure_detseg(model, images, targets, args.batch_size, args.iters))
    twin = torchvision_twin(cfg.model, num_classes, args.input_size)
    if twin is not None:
        measure_twin = measure_torchvision_segmentation if cfg.model.arch == "fcn" else measure_torchvision
        results["torchvision"] = vars(measure_twin(twin, images, targets, args.batch_size, args.iters))
        results["ratio"] = {k: results["detseg"][k] / results["torchvision"][k] for k in ("train_ips", "infer_ips")}
    if args.baseline:
        base = load_config(args.baseline, ["model.backbone.weights=null"])
        _check_timeable(base)
        measured = measure_detseg(build_model(base.model, num_classes), images, targets, args.batch_size, args.iters)
        results["baseline"] = {"config": args.baseline, **vars(measured)}
    return results


def print_table(results: dict) -> None:
    print(f"{results['config']} at {results['size']}x{results['size']}, train batch {results['batch_size']}, "
          f"{results['device']} ({results['threads']} threads)")
    print(f"{'model':<12} {'train img/s':>12} {'infer img/s':>12}")
    for name in ("detseg", "torchvision", "baseline"):
        if name in results:
            r = results[name]
            print(f"{name:<12} {r['train_ips']:>12.2f} {r['infer_ips']:>12.2f}")
    if "ratio" in results:
        r = results["ratio"]
        print(f"{'ratio':<12} {r['train_ips']:>11.2f}x {r['infer_ips']:>11.2f}x   (detseg / torchvision)")
    else:
        print("torchvision has no equivalent of this model")
    if "baseline" in results:
        r, b = results["detseg"], results["baseline"]
        print(f"{'vs baseline':<12} {r['train_ips'] / b['train_ips']:>11.2f}x {r['infer_ips'] / b['infer_ips']:>11.2f}x"
              f"   (detseg / {b['config']})")


def run_lineage_benchmark(args) -> int:
    from detseg.benchmarks.lineage import format_lineage, run_lineage

    report = run_lineage(args.config, args.overrides, args.limit, max(1, args.iters // 5), args.proposals,
                         args.trained, args.rcnn_warp)
    print(format_lineage(report))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return 0


def _check_timeable(cfg) -> None:
    if cfg.model.arch not in ("faster_rcnn", "mask_rcnn", "yolo", "ssd", "fcn"):
        raise ValueError(f"detseg benchmark times faster_rcnn, mask_rcnn, yolo, ssd and fcn configs; model.arch "
                         f"'{cfg.model.arch}' reads precomputed proposals, which synthetic inputs do not have yet")


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

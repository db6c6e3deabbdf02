"""Export a trained model to ONNX and check it against PyTorch with onnxruntime:
python tools/export.py CONFIG --checkpoint CKPT --format onnx [--dynamic] [--output FILE] [--input-size H W]
                       [--opset N] [--check-image IMG ...] [key=value ...]

Families: faster_rcnn, mask_rcnn, ssd, yolo, fcn. The graph takes one already-resized uint8 RGB image
[1, 3, H, W] ("image"); without --dynamic H x W is fixed (--input-size, default data.fixed_size, else
data.min_size_test squared). After export, PyTorch and onnxruntime run on the check images (default:
synthetic shapes pictures; with --dynamic also one of another size) and the max abs difference of each
output is printed; the tool fails (exit 1) when one is above its tolerance.
Run the file with: python tools/infer.py CONFIG --backend onnxruntime --checkpoint FILE.onnx ...
"""
import sys
from pathlib import Path

import cv2
import torch
from detseg.cli.common import config_parser, load, run_main, writable_folder

from detseg.data.datasets.base import read_rgb
from detseg.export.onnx_export import (DEFAULT_OPSET, TOLERANCES, ExportMismatch, check_images, check_tolerances,
                                       compare, export_onnx)
from detseg.app.pipeline import load_trained_model


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--checkpoint", required=True, help="the trained detseg checkpoint to export")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    parser.add_argument("--dynamic", action="store_true", help="any input height and width (not ssd, yolo)")
    parser.add_argument("--output", help="the .onnx file (default: the checkpoint's path with .onnx)")
    parser.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"), help="the export's input size")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    parser.add_argument("--check-image", nargs="+", default=[], help="pictures to compare on (resized to the input)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = parser.parse_intermixed_args(argv)
    cfg = load(args)
    output = Path(args.output or Path(args.checkpoint).with_suffix(".onnx"))
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    writable_folder(output.parent, "the folder of --output")  # before exporting
    # the graph is float32 in the default layout whatever this CPU's "auto" precision would pick
    cfg.train.amp, cfg.train.channels_last = False, False
    model, cfg = load_trained_model(cfg, args.checkpoint, torch.device("cpu"))
    input_hw = tuple(args.input_size or cfg.data.fixed_size or (cfg.data.min_size_test,) * 2)
    metadata = {"class_names": cfg.model.class_names or [str(i) for i in range(cfg.model.num_classes)],
                "mask_threshold": cfg.model.mask.threshold}
    output.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, cfg.model.arch, output, input_hw, args.dynamic, metadata, args.opset)
    print(f"wrote {output} ({'dynamic' if args.dynamic else 'fixed'} input, example {input_hw[0]}x{input_hw[1]})")
    images = checked_images(args.check_image, input_hw, args.dynamic)
    results = compare(model, cfg.model.arch, output, images, cfg.model.mask.threshold)
    for (h, w), result in zip([im.shape[:2] for im in images], results):
        print(f"  {h}x{w}: " + ", ".join(f"{k} {v:.3g}" for k, v in result.items()))
    if all(r.get("detections", 1) == 0 for r in results):
        print("note: no detections on the check images; pass --check-image with real pictures for a stronger check")
    try:
        check_tolerances(results)
    except ExportMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    checked = [k for k in TOLERANCES if any(k in r for r in results)]
    print("within tolerance: " + ", ".join(f"{k} {TOLERANCES[k]:g}" for k in checked))
    return 0


def checked_images(paths: list[str], input_hw: tuple[int, int], dynamic: bool) -> list:
    """The user's pictures resized to the input, or synthetic ones; a second size when dynamic."""
    h, w = input_hw
    if paths:
        images = [cv2.resize(read_rgb(p), (w, h), interpolation=cv2.INTER_AREA) for p in paths]
    else:
        images = check_images(input_hw, 2)
    if dynamic:  # another size and aspect ratio than the trace's example
        other = (max(32, h * 3 // 4), w + w // 4)
        images.append(cv2.resize(images[0], other[::-1], interpolation=cv2.INTER_AREA))
    return images


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

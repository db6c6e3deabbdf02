"""Export a trained model to ONNX and check it against PyTorch with onnxruntime:
detseg export CONFIG --checkpoint CKPT --format onnx [--output FILE] [--dynamic | --fixed] [--input-size H W]
              [--opset N] [--check-image IMG ...] [--check-val [--max-drift AP] [--allow-drift]]
              [--precision fp16|int8 ...] [key=value ...]

Families: faster_rcnn, mask_rcnn, ssd, yolo, fcn. The graph takes one already-resized uint8 RGB image
[1, 3, H, W] ("image"). Its input fits the config's test resize: any H and W (dynamic) under the
shortest-edge resize (data.min_size_test / max_size_test), one size when data.fixed_size is set. --fixed
or --input-size H W ask for one size (--input-size, else data.fixed_size, else data.min_size_test
squared), --dynamic for any. SSD and YOLO export at one size only (their default boxes / grid are laid
over it). After export, PyTorch and onnxruntime run on the check images (default: synthetic shapes
pictures; a dynamic graph also one of another size) and the max abs difference of each output is
printed; the tool fails (exit 1) when one is above its tolerance.

--check-val then evaluates PyTorch and the graph on the config's val split with the same evaluators and
prints their AP (semantic models: mIoU), the difference and the milliseconds per image; a difference
above --max-drift fails (exit 1) unless --allow-drift. --precision fp16 / int8 also write FILE.fp16.onnx /
FILE.int8.onnx (onnxruntime's float16 conversion, dynamic int8 quantisation) and judge them on the val
split the same way (they imply --check-val); a precision onnxruntime's CPU provider cannot run is one line.
Run the file with: detseg infer CONFIG --backend onnxruntime --checkpoint FILE.onnx ...
"""
import math
import sys
from pathlib import Path

import cv2
import torch
from detseg.cli.common import config_parser, load, run_main, writable_folder

from detseg.data.datasets.base import read_rgb
from detseg.export.input_size import export_input
from detseg.export.onnx_export import (DEFAULT_OPSET, TOLERANCES, ExportMismatch, check_images, check_tolerances,
                                       compare, export_onnx)
from detseg.export.precision import PRECISIONS, PrecisionUnsupported, convert, precision_path
from detseg.export.val_check import PYTORCH, ValResult, drift_errors, drifts, val_check
from detseg.app.pipeline import load_trained_model

DEFAULT_MAX_DRIFT = 0.5


def build_parser():
    parser = config_parser(__doc__)
    parser.add_argument("--checkpoint", required=True, help="the trained detseg checkpoint to export")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    parser.add_argument("--output", help="the .onnx file (default: the checkpoint's path with .onnx)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--dynamic", action="store_true",
                      help="any input height and width (the default unless data.fixed_size is set; not ssd, yolo)")
    size.add_argument("--fixed", action="store_true", help="one input size: --input-size, data.fixed_size or "
                                                           "data.min_size_test squared")
    parser.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"),
                        help="the fixed input size (implies --fixed; with --dynamic the example traced)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    parser.add_argument("--check-image", nargs="+", default=[], help="pictures to compare on (resized to the input)")
    parser.add_argument("--check-val", action="store_true",
                        help="evaluate PyTorch and the graph on the config's val split: AP, difference, ms/image")
    parser.add_argument("--max-drift", type=float, default=DEFAULT_MAX_DRIFT,
                        help="largest allowed |graph - PyTorch| of AP (mIoU) in points, with --check-val")
    parser.add_argument("--allow-drift", action="store_true", help="report a drift above --max-drift, do not fail")
    parser.add_argument("--precision", action="append", choices=PRECISIONS,
                        help="also write the graph in this precision (repeatable; fp32 is always written): "
                             "FILE.fp16.onnx / FILE.int8.onnx, judged on the val split")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    cfg = load(args)
    output = Path(args.output or Path(args.checkpoint).with_suffix(".onnx"))
    precisions = list(dict.fromkeys(["fp32", *(args.precision or [])]))
    for path in (precision_path(output, p) for p in precisions):
        if path.exists() and not args.overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    writable_folder(output.parent, "the folder of --output")  # before exporting
    # the graph is float32 in the default layout whatever this CPU's "auto" precision would pick
    cfg.train.amp, cfg.train.channels_last = False, False
    model, cfg = load_trained_model(cfg, args.checkpoint, torch.device("cpu"))
    if export_and_check(model, cfg, output, args):
        return 1
    graphs, unsupported = write_precisions(output, precisions)
    failed = bool(unsupported)
    if args.check_val or len(precisions) > 1:
        failed |= judge_on_val(cfg, model, graphs, args)
    return int(failed)


def export_and_check(model, cfg, output: Path, args) -> int:
    """Write the fp32 graph and compare it with PyTorch on the check images: 1 when out of tolerance."""
    shape = export_input(cfg, args.dynamic, args.fixed, args.input_size)
    if shape.note:
        print(f"note: {shape.note}")
    metadata = {"class_names": cfg.model.class_names or [str(i) for i in range(cfg.model.num_classes)],
                "mask_threshold": cfg.model.mask.threshold}
    export_onnx(model, cfg.model.arch, output, shape.hw, shape.dynamic, metadata, args.opset)
    kind = "dynamic input" if shape.dynamic else "fixed input"
    print(f"wrote {output} ({kind}, example {shape.hw[0]}x{shape.hw[1]})")
    images = checked_images(args.check_image, shape.hw, shape.dynamic)
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


def write_precisions(output: Path, precisions: list[str]) -> tuple[dict[str, Path], list[str]]:
    """{"onnx fp32": path, "onnx int8": path, ...} of the graphs written, and the precisions that failed
    (each said in one line on stderr)."""
    graphs, unsupported = {}, []
    for precision in precisions:
        try:
            graphs[f"onnx {precision}"] = convert(output, precision)
        except PrecisionUnsupported as exc:
            print(f"error: {exc}", file=sys.stderr)
            unsupported.append(precision)
            continue
        if precision != "fp32":
            print(f"wrote {graphs[f'onnx {precision}']}")
    return graphs, unsupported


def judge_on_val(cfg, model, graphs: dict[str, Path], args) -> bool:
    """Print the val-split table; True when a drift above --max-drift fails the export."""
    results = val_check(cfg, model, graphs)
    print(format_val_table(results))
    errors = drift_errors(results, args.max_drift)
    if errors and not args.allow_drift:
        print(f"error: {'; '.join(errors)}; pass --allow-drift to accept it", file=sys.stderr)
        return True
    for line in errors:
        print(f"note: {line} (--allow-drift)")
    return False


def format_val_table(results: list[ValResult]) -> str:
    """One line per model: each headline metric (with its difference from PyTorch) and ms per image."""
    diffs = drifts(results)
    lines = [f"val split, {results[0].name} against the exported graphs (one image per batch):"]
    for result in results:
        cells = [f"{metric} {value:.2f}" + (f" ({diffs[result.name][metric]:+.2f})" if result.name != PYTORCH else "")
                 for metric, value in result.metrics.items()]
        latency = "n/a" if math.isnan(result.ms_per_image) else f"{result.ms_per_image:.1f}"
        lines.append(f"  {result.name:<10} " + ", ".join(cells) + f", {latency} ms/image")
    return "\n".join(lines)


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

"""``detseg <command> ...``: one installed command for every tool (the same modules tools/*.py run)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from detseg.cli.common import DEBUG_ENV, HelpFormatter, version_line

# command -> (module in detseg.cli, one line for the command list); modules load only when chosen
COMMANDS = {
    "train": ("train", "train a model from a config (a run folder with checkpoints, logs and plots)"),
    "eval": ("evaluate", "evaluate a checkpoint or run folder on the val split (COCO / VOC mAP, mIoU, top-1)"),
    "infer": ("infer", "draw a model's predictions on images, folders and videos"),
    "export": ("export", "export a trained model to ONNX (fp32, int8), judged against PyTorch in AP"),
    "check": ("check", "check a dataset: per-file problems, duplicates and leakage, classes, anchor coverage"),
    "convert": ("convert", "convert a dataset between COCO json, Pascal VOC xml and YOLO txt"),
    "browse": ("browse", "draw training samples as the model sees them (after augmentation)"),
    "summary": ("summary", "per-layer parameters, FLOPs and receptive fields of a model or backbone"),
    "benchmark": ("benchmark", "throughput against torchvision, the region-based lineage, the zoo"),
    "plot": ("plot", "draw the plots of a run or evaluation folder again"),
    "proposals": ("proposals", "build the selective-search proposal cache ahead of training"),
    "make-dataset": ("make_dataset", "generate the synthetic shapes (or shape-crops) dataset"),
    "import-torchvision": ("import_torchvision", "turn a torchvision model's weights into a detseg checkpoint"),
    "check-install": ("check_install", "check that torch, torchvision's ops and OpenCV's contrib build work"),
}


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<20}{summary}" for name, (_, summary) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="detseg", formatter_class=HelpFormatter,
        description="Object detection and segmentation on one PyTorch codebase.",
        epilog=f"commands:\n{listing}\n\n'detseg COMMAND --help' shows a command's options.")
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("--debug", action="store_true", help=f"show the traceback behind a one-line error "
                                                            f"(the same as {DEBUG_ENV}=1)")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of the commands below")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    args = build_parser().parse_args(argv[: split + 1])  # options before COMMAND, and COMMAND
    if args.debug:
        os.environ[DEBUG_ENV] = "1"
    module = importlib.import_module(f"detseg.cli.{COMMANDS[args.command][0]}")
    sys.argv = [f"detseg {args.command}", *argv[split + 1:]]  # argparse names the command in usage lines
    module.run(argv[split + 1:])


if __name__ == "__main__":
    main()

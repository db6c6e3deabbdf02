"""Turn a torchvision detection state dict into a detseg checkpoint:

python tools/import_torchvision.py --arch fasterrcnn_resnet50_fpn --weights FILE --output CKPT

FILE is a state dict saved from torchvision (for example the COCO weights torchvision downloads to
~/.cache/torch/hub/checkpoints/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth). The checkpoint then works
with tools/eval.py and tools/infer.py and the matching config (printed at the end).
"""
from pathlib import Path

from detseg.cli import common
from detseg.cli.common import run_main

from detseg.config import config_to_dict, load_config
from detseg.utils.checkpoint import save_checkpoint
from detseg.models.build import build_model
from detseg.interop.torchvision_import import CONFIGS, convert_state_dict, load_converted, torchvision_class_names


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--arch", required=True, choices=sorted(CONFIGS), help="torchvision model the weights belong to")
    parser.add_argument("--weights", required=True, help="torchvision state dict (.pth)")
    parser.add_argument("--output", required=True, help="detseg checkpoint to write")
    args = parser.parse_args(argv)
    import torch

    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # torchvision's reference scripts wrap the weights
    config_path = Path(__file__).resolve().parents[2] / CONFIGS[args.arch]  # the checkout's configs/
    cfg = load_config(config_path, ["model.backbone.weights=null"])
    # stored with the run so that infer labels a cup "cup", not its contiguous index
    cfg.model.class_names = torchvision_class_names(args.arch, cfg.model.num_classes)
    if cfg.data.format == "coco":  # torchvision's label i + 1 is COCO's category id of detseg's label i
        cfg.data.category_ids = list(range(1, cfg.model.num_classes + 1))
    model = build_model(cfg.model)
    load_converted(model, convert_state_dict(args.arch, state))
    save_checkpoint(args.output, {"model": model.state_dict(), "config": config_to_dict(cfg), "iteration": 0})
    print(f"wrote {args.output}; use it with {CONFIGS[args.arch]}")
    return 0


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

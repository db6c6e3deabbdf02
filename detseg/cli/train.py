"""Train a model: detseg train CONFIG [--output-dir DIR] [--resume | --overwrite] [--init-from RUN] [key=value ...]
(python tools/train.py is the same command). Several processes: torchrun --nproc-per-node N tools/train.py ...

The run folder gets config.yaml (the resolved config), metrics.jsonl, tb/, last.pt, best.pt, labels.json
and plots/; a folder that already holds a run is refused unless --resume or --overwrite says what to do.
--resume goes on from last.pt, with a changed plan (train.max_iters, train.max_minutes, solver.steps, ...) if
the config changed it; --init-from starts a new run (iteration 0, fresh optimizer) from another run's weights.
"""
from __future__ import annotations

from detseg.app.training import run_training
from detseg.cli.common import config_parser, load, run_main, writable_folder
from detseg.utils.distributed import is_main_process


def main(argv: list[str] | None = None) -> int:
    parser = config_parser(__doc__)
    parser.add_argument("--output-dir", help="run folder (default: the config's train.output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run in an output folder that holds one (its checkpoints and "
                             "metrics.jsonl are replaced); without it or --resume such a folder is refused")
    parser.add_argument("--init-from", metavar="RUN",
                        help="a run folder (its last.pt) or checkpoint whose weights the new run's model starts "
                             "from; tensors of another shape (e.g. the class logits for another class count) "
                             "stay as built and are listed")
    args = parser.parse_intermixed_args(argv)
    cfg = load(args)
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    if is_main_process():
        writable_folder(cfg.train.output_dir)  # one line before any work
    run_training(cfg, resume=args.resume, overwrite=args.overwrite, init_from_run=args.init_from)
    return 0


def run(argv: list[str] | None = None) -> None:
    run_main(main, argv)

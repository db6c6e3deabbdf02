"""Argument and error handling shared by the command-line tools."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from detseg.config import ConfigError, load_config  # noqa: E402


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings the tools print are about the user's data or config: the message, not our source line."""
    return f"warning: {message}\n"


warnings.formatwarning = _one_line_warning


def config_parser(description: str, config_required: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs=None if config_required else "?",
                        help="YAML config, e.g. configs/faster_rcnn/shapes.yaml, or a run folder (its config.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. solver.lr=0.01")
    return parser


def writable_folder(path, flag: str = "--output-dir") -> Path:
    """Create ``path`` if needed and prove it takes a file, before any work is done, so that a read-only
    or mistyped folder is one line at the start instead of a traceback after minutes of work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".detseg_write_test_"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write to {flag} {path}: {exc.strerror or exc}") from None
    return path


def load(args):
    """The config of ``args.config``: a YAML file, or a run folder (its config.yaml, as trained)."""
    return load_config(config_path(args.config), args.overrides)


def config_path(config: str) -> Path:
    path = Path(config)
    if not path.is_dir():
        return path
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path} is a folder without config.yaml: give a config file or a run folder")
    return path / "config.yaml"


def run_checkpoint(args) -> str:
    """``--checkpoint`` if given, else the run folder's best.pt (or last.pt) when CONFIG is a run folder."""
    if args.checkpoint:
        return args.checkpoint
    folder = Path(args.config)
    for name in ("best.pt", "last.pt"):
        if folder.is_dir() and (folder / name).is_file():
            return str(folder / name)
    if folder.is_dir():
        raise FileNotFoundError(f"the run folder {folder} holds no best.pt or last.pt")
    raise ValueError("--checkpoint is needed when CONFIG is a config file (with a run folder as CONFIG, its "
                     "best.pt or last.pt is used)")


def run_main(main) -> None:
    """Turn the errors users cause (bad config, data or file) into one line and exit code 2."""
    from detseg.data.errors import DatasetError
    from detseg.utils.checkpoint import CheckpointError

    try:
        sys.exit(main())
    except (ConfigError, DatasetError, CheckpointError, FileNotFoundError, FileExistsError, ValueError) as exc:
        if os.environ.get("DETSEG_DEBUG"):  # the full traceback, for a bug report
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

"""Argument and error handling shared by the commands."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

from detseg import __version__
from detseg.config import ConfigError, load_config

DEBUG_ENV = "DETSEG_DEBUG"


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings the commands print are about the user's data or config: the message, not our source line."""
    return f"warning: {message}\n"


warnings.formatwarning = _one_line_warning


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Module docstrings keep their line breaks; an option's help ends with its default where it has one
    (not for on/off flags and options that are unset or empty by default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default in (None, False, argparse.SUPPRESS) or action.default == []
        shown = not unset and "default" not in text
        return f"{text} (default: %(default)s)" if shown and action.option_strings else text


def parser(description: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser: its docstring as description, defaults shown, ``--version``."""
    made = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter, **kwargs)
    made.add_argument("--version", action="version", version=version_line())
    return made


def version_line() -> str:
    import torch
    import torchvision

    return f"detseg {__version__} (torch {torch.__version__}, torchvision {torchvision.__version__})"


def config_parser(description: str, config_required: bool = True) -> argparse.ArgumentParser:
    made = parser(description)
    made.add_argument("config", nargs=None if config_required else "?",
                      help="YAML config, e.g. configs/faster_rcnn/shapes.yaml, or a run folder (its config.yaml)")
    made.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. solver.lr=0.01")
    return made


def add_renamed(made: argparse.ArgumentParser, flag: str, *old_flags: str, **kwargs) -> argparse.Action:
    """``flag``, with the spellings it had before (``old_flags``) still accepted but left out of --help,
    usage and error messages."""
    action = made.add_argument(flag, *old_flags, **kwargs)
    action.option_strings = [flag]  # parsing looks every spelling up in the parser's own table
    return action


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


def run_main(main, argv: list[str] | None = None) -> None:
    """Run a command's ``main(argv)``; the errors users cause (bad config, data or file) become one line
    and exit code 2 (``DETSEG_DEBUG=1`` or ``detseg --debug`` shows the traceback, for a bug report)."""
    from detseg.data.errors import DatasetError
    from detseg.data.selective_search import SelectiveSearchUnavailable
    from detseg.utils.checkpoint import CheckpointError

    try:
        sys.exit(main(argv))
    except (ConfigError, DatasetError, CheckpointError, SelectiveSearchUnavailable, FileNotFoundError,
            FileExistsError, ValueError) as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

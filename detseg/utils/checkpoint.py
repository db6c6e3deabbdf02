"""Atomic checkpoint files that only ever load with `torch.load(weights_only=True)`.

A checkpoint is a dict of plain types: tensors, numbers, strings, lists and dicts.
Nothing in it is unpickled as code, so loading a file from elsewhere cannot run it.
"""
from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detseg.utils.files import atomic_write

logger = logging.getLogger(__name__)

FORMAT = "detseg-checkpoint"
VERSION = 1
# Keys every detseg training checkpoint has; a file without them came from somewhere else.
REQUIRED_KEYS = ("format", "version", "model", "iteration")


class CheckpointError(ValueError):
    """A file that is not a readable detseg checkpoint (empty, truncated, foreign, unsafe)."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write atomically (see detseg.utils.files): a crash at any point leaves either the previous
    checkpoint or the new one, never a half-written file."""
    state = {**state, "format": FORMAT, "version": VERSION}
    with atomic_write(path) as f:
        torch.save(state, f)


def require_torch_file(path: Path, what: str = "checkpoint") -> None:
    """A one-line CheckpointError unless ``path`` starts like a torch.save file (a zip archive, or an old
    pickle); ``what`` names it for the user (e.g. the config key that gave the path)."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is empty")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save writes a zip archive (old: a pickle)
        raise CheckpointError(f"{what} {path} is not a torch checkpoint (neither a zip archive nor a pickle: "
                              f"it starts with {head!r})")


def _read_file(path: Path, map_location: Any) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    require_torch_file(path)
    try:
        with warnings.catch_warnings():
            # torch warns before refusing a foreign pickle; the CheckpointError says it better.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, refused global, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    """One line for torch.load's many-paragraph errors."""
    text = str(exc)
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported (global: GLOBAL \S+|operand \S+)", text)
        detail = found.group(0) if found else "a pickled object"
        return f"refused by weights-only loading ({detail}); it holds Python objects, not just tensors"
    if "PytorchStreamReader" in text or isinstance(exc, EOFError):
        return "truncated or corrupt (incomplete torch zip archive)"
    first = (text.strip().splitlines() or [""])[0][:120]
    return f"not a torch checkpoint ({type(exc).__name__}: {first})"


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    path = Path(path)
    state = _read_file(path, map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a detseg checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a complete detseg checkpoint (missing {', '.join(missing)})")
    if state["version"] > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state['version']}, newer than this detseg ({VERSION})")
    return state


def is_detseg_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a detseg training checkpoint, reading only its marker (memory-mapped, so a
    large file is not loaded twice); False for anything else, including unreadable files."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - legacy or foreign formats: not ours
        return False
    return isinstance(state, dict) and state.get("format") == FORMAT


def submodule_state(path: str | Path, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors under ``prefix`` (e.g. "backbone.") of a detseg checkpoint's model, prefix removed,
    and the checkpoint's stored config; CheckpointError when it has none."""
    state = load_checkpoint(path)
    model = {k.removeprefix("module."): v for k, v in state["model"].items()}  # saved from a DDP wrapper
    found = {k[len(prefix):]: v for k, v in model.items() if k.startswith(prefix)}
    if not found:
        sample = ", ".join(list(model)[:5])
        raise CheckpointError(f"{path} holds no '{prefix}*' weights (its model has {len(model)} tensors, "
                              f"e.g. {sample})")
    return found, state.get("config") or {}


def load_model_weights(model: nn.Module, path: str | Path, strict: bool = False) -> dict[str, list[str]]:
    """Load a detseg checkpoint's "model" or a bare state dict into `model`.

    Keys that are missing, unexpected or of another shape (e.g. a classifier for a
    different class count) are skipped and reported; returns them by kind. With
    strict=True any such key is an error.
    """
    path = Path(path)
    state = _read_file(path, "cpu")
    if isinstance(state, dict) and state.get("format") == FORMAT:
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds neither a detseg checkpoint nor a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from a DDP wrapper
    report = _match_keys(model.state_dict(), state)
    if len(report["loaded"]) == 0:
        raise CheckpointError(f"{path}: none of its {len(state)} tensors match the model's parameter names")
    _report(path, report, strict)
    model.load_state_dict({k: state[k] for k in report["loaded"]}, strict=False)
    return report


def _match_keys(own: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    shared = [k for k in own if k in theirs]
    return {
        "loaded": [k for k in shared if own[k].shape == theirs[k].shape],
        "shape_mismatch": [k for k in shared if own[k].shape != theirs[k].shape],
        "missing": [k for k in own if k not in theirs],
        "unexpected": [k for k in theirs if k not in own],
    }


def _report(path: Path, report: dict[str, list[str]], strict: bool) -> None:
    problems = [f"{kind} ({len(keys)}): {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
                for kind, keys in report.items() if kind != "loaded" and keys]
    if not problems:
        return
    message = f"weights from {path}: " + "; ".join(problems)
    if strict:
        raise CheckpointError(message)
    logger.warning(message)

"""Where converted files go: the output-folder guard and image placement (never re-encoded)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
IMAGE_MODES = ("copy", "link")


def prepare_output(output: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse an output that overlaps an input (writing there could change the input) or that
    already holds files (unless ``overwrite``: then files of the same name are replaced, others kept)."""
    out = output.resolve()
    for source in inputs:
        src = source.resolve()
        if out == src or out.is_relative_to(src) or src.is_relative_to(out):
            raise ValueError(f"--output {output} overlaps the input {source}; choose a separate folder")
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"--output {output} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"--output {output} is not empty; pass --overwrite to write into it")
    output.mkdir(parents=True, exist_ok=True)


def place_image(source: Path, target: Path, mode: str) -> None:
    """``copy``, or ``link`` (a hard link; a copy across file systems). No symbolic links: the
    datasets refuse images that resolve outside their folder (detseg.data.safety)."""
    if mode not in IMAGE_MODES:
        raise ValueError(f"image mode must be one of {IMAGE_MODES}, got {mode!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # never write through an existing (possibly linked) file
    if mode == "link":
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_text(text, encoding="utf-8")

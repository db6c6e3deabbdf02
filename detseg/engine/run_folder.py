"""A run folder is never overwritten by accident: a second training into it needs --resume (continue)
or --overwrite (start again there); nothing else a user keeps in the folder is touched."""
from __future__ import annotations

from pathlib import Path

# what a training run writes and a new run would replace or append to
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "config.yaml")
REPLACED_ON_OVERWRITE = ("last.pt", "best.pt", "metrics.jsonl")


def prepare_run_folder(folder: str | Path, resume: bool, overwrite: bool) -> list[str]:
    """Check ``folder`` before any work; with ``overwrite`` remove the previous run's checkpoints and
    metrics log (returned), so the new run starts clean instead of appending to them."""
    folder = Path(folder)
    if resume and overwrite:
        raise ValueError("--resume continues the run in the output folder and --overwrite starts a new one "
                         "there: pass one of them")
    found = [name for name in RUN_FILES if (folder / name).exists()]
    if resume or not found:
        return []
    if not overwrite:
        raise FileExistsError(f"{folder} already holds a run ({', '.join(found)}); pass --resume to continue it, "
                              "--overwrite to start a new run there, or another --output-dir")
    removed = [name for name in REPLACED_ON_OVERWRITE if (folder / name).exists()]
    for name in removed:
        (folder / name).unlink()
    return removed

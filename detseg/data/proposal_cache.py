"""Precomputed proposals on disk: one ``.npz`` per split and settings (no pickle), built in parallel.

File ``<cache_dir>/<split>_<source>_<settings hash>.npz`` holds, for every image: its id, file path,
mtime and size (the key), and its boxes (float32 xyxy, original image pixels) as one concatenated
array plus per-image counts. On load:
- a file that cannot be read or is inconsistent is *corrupt*: a message, then a full rebuild;
- images whose file changed (mtime or size) or that are not in the cache are *stale*: a message, then
  only those are recomputed and the file is rewritten;
- everything else is a hit. Writes are atomic (detseg.utils.files): a reader never sees half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detseg.utils.files import atomic_write

CACHE_VERSION = 1


@dataclass(frozen=True)
class ImageRecord:
    image_id: int
    path: str


def settings_hash(settings: dict) -> str:
    text = json.dumps({**settings, "version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def cache_file(cache_dir: str | os.PathLike, split: str, settings: dict) -> Path:
    return Path(cache_dir) / f"{split}_{settings.get('source', 'proposals')}_{settings_hash(settings)}.npz"


def file_key(path: str) -> tuple[float, int]:
    st = os.stat(path)
    return st.st_mtime, st.st_size


def _log(msg: str) -> None:
    print(f"proposals: {msg}", file=sys.stderr, flush=True)


def load_cache(path: Path, settings: dict) -> dict | None:
    """{"ids", "paths", "mtimes", "sizes", "boxes" (list of arrays)} or None when corrupt (message given)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = json.loads(str(z["settings"]))
            ids, paths, mtimes, sizes = z["ids"], z["paths"], z["mtimes"], z["sizes"]
            counts, boxes = z["counts"], z["boxes"]
        if stored != {**settings, "version": CACHE_VERSION}:
            raise ValueError("settings differ from the file name's hash")
        if not (len(ids) == len(paths) == len(mtimes) == len(sizes) == len(counts)) or counts.sum() != len(boxes):
            raise ValueError("arrays have inconsistent lengths")
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes have shape {boxes.shape}, expected [N, 4]")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        _log(f"cache {path} is corrupt ({exc}); rebuilding it")
        return None
    return {"ids": ids.tolist(), "paths": paths.tolist(), "mtimes": mtimes.tolist(), "sizes": sizes.tolist(),
            "boxes": np.split(boxes.astype(np.float32), np.cumsum(counts)[:-1]) if len(counts) else []}


def save_cache(path: Path, settings: dict, records: list[ImageRecord], keys: list[tuple[float, int]],
               boxes: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "settings": np.array(json.dumps({**settings, "version": CACHE_VERSION}, sort_keys=True)),
        "ids": np.array([r.image_id for r in records], np.int64),
        "paths": np.array([r.path for r in records], dtype=str),
        "mtimes": np.array([k[0] for k in keys], np.float64),
        "sizes": np.array([k[1] for k in keys], np.int64),
        "counts": np.array([len(b) for b in boxes], np.int64),
        "boxes": np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
    }
    with atomic_write(path) as f:  # a file object: given a path, np.savez would append ".npz" to it
        np.savez(f, **arrays)


def build_or_load(records: list[ImageRecord], path: Path, settings: dict, compute, workers: int = 0,
                  progress: bool = True) -> dict[int, np.ndarray]:
    """image id -> boxes for every record, from the cache where it is fresh, else ``compute(path)``.

    ``compute`` must be a picklable top-level function ``image path -> float32 [M, 4]``.
    """
    path = Path(path)
    keys = [file_key(r.path) for r in records]
    cached = load_cache(path, settings) if path.exists() else None
    fresh: dict[int, np.ndarray] = {}
    if cached is not None:
        index = {(p, m, s): b for p, m, s, b in zip(cached["paths"], cached["mtimes"], cached["sizes"], cached["boxes"])}
        for r, (m, s) in zip(records, keys):
            if (r.path, m, s) in index:
                fresh[r.image_id] = index[(r.path, m, s)]
    todo = [r for r in records if r.image_id not in fresh]
    if not todo:
        return fresh
    if cached is not None:
        _log(f"cache {path}: {len(todo)} of {len(records)} images are new or changed since it was built; updating it")
    elif not path.exists():
        _log(f"building {path} for {len(records)} images ({workers or 1} processes)")
    fresh.update(zip((r.image_id for r in todo), _compute_all([r.path for r in todo], compute, workers, progress)))
    save_cache(path, settings, records, keys, [fresh[r.image_id] for r in records])
    return fresh


def _compute_all(paths: list[str], compute, workers: int, progress: bool) -> list[np.ndarray]:
    bar = dict(total=len(paths), desc="selective search", disable=not progress, mininterval=1.0)
    if workers <= 1:
        return [compute(p) for p in tqdm(paths, **bar)]
    with get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(compute, paths, chunksize=4), **bar))

"""Exact and near-duplicate images, within a split and across train / val (leakage).

- Exact: the same bytes (SHA-256 of the file).
- Near: a perceptual hash (``imagehash.phash``: the signs of the 8 x 8 lowest DCT frequencies of a
  32 x 32 grey thumbnail, 64 bits) at most ``NEAR_BITS`` bits apart. Re-encoding, a small resize or
  a brightness change moves it by a few bits; on BCCD's 364 look-alike blood smears the closest
  unrelated pair is 14 bits apart and the one real near-duplicate (BloodImage_00037 / 00038, the
  same field re-photographed) 4. pHash rather than dHash (gradient signs): dHash put unrelated
  BCCD pairs 11 bits apart. JPEGs are decoded at a reduced scale (PIL's draft mode), which
  moves no hash by more than a bit and is 5x faster.

Comparing all pairs is quadratic (a numpy pass per block of rows): about a second for 10k images.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

NEAR_BITS = 8
HASH_SIDE = 64  # draft decode size: JPEG's DCT scaling stops at 1/8, well above this
_CHUNK = 1 << 20
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


@dataclass
class Fingerprint:
    sha256: str | None   # None: the file cannot be read
    phash: np.ndarray | None  # 8 bytes; None: the image does not decode


@dataclass
class DuplicatePair:
    first: str   # "train:BloodImage_00037"
    second: str
    kind: str    # "exact" or "near"
    bits: int    # perceptual hash distance (0 for exact copies)


def fingerprint(path: Path) -> Fingerprint:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
    except OSError:
        return Fingerprint(None, None)
    return Fingerprint(digest.hexdigest(), _phash(path))


def _phash(path: Path) -> np.ndarray | None:
    import imagehash

    try:
        with Image.open(path) as img:
            img.draft("L", (HASH_SIDE, HASH_SIDE))
            bits = imagehash.phash(img).hash.flatten()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None  # the per-file check names unreadable images
    return np.packbits(bits)


def find_duplicates(names: list[str], prints: list[Fingerprint]) -> list[DuplicatePair]:
    """Every pair of images that are exact or near copies. ``names[i]`` labels ``prints[i]``."""
    found = _exact_pairs(names, prints)
    exact = {(p.first, p.second) for p in found}
    for i, j, bits in _near_pairs(prints):
        a, b = names[i], names[j]
        if (a, b) not in exact and (b, a) not in exact:
            found.append(DuplicatePair(a, b, "near", bits))
    return found


def _exact_pairs(names: list[str], prints: list[Fingerprint]) -> list[DuplicatePair]:
    groups: dict[str, list[int]] = {}
    for i, fp in enumerate(prints):
        if fp.sha256 is not None:
            groups.setdefault(fp.sha256, []).append(i)
    return [DuplicatePair(names[g[a]], names[g[b]], "exact", 0)
            for g in groups.values() for a in range(len(g)) for b in range(a + 1, len(g))]


def _near_pairs(prints: list[Fingerprint], block: int = 64) -> list[tuple[int, int, int]]:
    """(i, j, bits) with i < j and at most NEAR_BITS bits apart."""
    index = [i for i, fp in enumerate(prints) if fp.phash is not None]
    if len(index) < 2:
        return []
    hashes = np.stack([prints[i].phash for i in index])  # [N, 8] uint8
    pairs = []
    for start in range(0, len(index), block):
        rows = hashes[start:start + block]
        bits = _POPCOUNT[rows[:, None, :] ^ hashes[None, :, :]].sum(-1, dtype=np.int32)  # [B, N]: B x N x 8 bytes at most
        for r, c in zip(*np.nonzero(bits <= NEAR_BITS)):
            if start + r < c:
                pairs.append((index[start + r], index[c], int(bits[r, c])))
    return pairs

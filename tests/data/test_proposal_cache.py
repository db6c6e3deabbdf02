"""The proposal cache (hit, stale, corrupt, settings) and the file source's messages."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from detseg.data.proposals import load_proposal_file
from detseg.data.proposal_cache import ImageRecord, build_or_load, cache_file

CALLS: list[str] = []


def fake_compute(path: str) -> np.ndarray:
    CALLS.append(path)
    n = len(os.path.basename(path))
    return np.array([[0, 0, n, n], [1, 1, 5, 5]], np.float32)


@pytest.fixture
def records(tmp_path):
    out = []
    for i in range(3):
        p = tmp_path / f"img{i}.jpg"
        p.write_bytes(b"x" * (i + 1))
        out.append(ImageRecord(i + 10, str(p)))
    return out


SETTINGS = {"source": "selective_search", "mode": "fast", "max_proposals": 10, "min_size": 1.0, "max_side": None}


def test_miss_then_hit(tmp_path, records):
    CALLS.clear()
    path = cache_file(tmp_path / "cache", "train", SETTINGS)
    first = build_or_load(records, path, SETTINGS, fake_compute, workers=0, progress=False)
    assert len(CALLS) == 3 and path.exists() and path.suffix == ".npz"
    second = build_or_load(records, path, SETTINGS, fake_compute, workers=0, progress=False)
    assert len(CALLS) == 3  # nothing recomputed
    assert set(second) == {10, 11, 12}
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
        assert second[k].dtype == np.float32


def test_stale_image_is_recomputed_with_message(tmp_path, records, capsys):
    path = cache_file(tmp_path, "val", SETTINGS)
    build_or_load(records, path, SETTINGS, fake_compute, workers=0, progress=False)
    CALLS.clear()
    with open(records[1].path, "ab") as f:
        f.write(b"more")  # size changes
    build_or_load(records, path, SETTINGS, fake_compute, workers=0, progress=False)
    assert CALLS == [records[1].path]
    assert "1 of 3 images are new or changed" in capsys.readouterr().err
    CALLS.clear()
    build_or_load(records, path, SETTINGS, fake_compute, workers=0, progress=False)
    assert CALLS == []


def test_corrupt_cache_is_rebuilt_with_message(tmp_path, records, capsys):
    path = cache_file(tmp_path, "train", SETTINGS)
    build_or_load(records, path, SETTINGS, fake_compute, workers=0, progress=False)
    path.write_bytes(b"not a zip file")
    CALLS.clear()
    out = build_or_load(records, path, SETTINGS, fake_compute, workers=0, progress=False)
    assert len(CALLS) == 3 and len(out) == 3
    assert "corrupt" in capsys.readouterr().err
    CALLS.clear()
    build_or_load(records, path, SETTINGS, fake_compute, workers=0, progress=False)
    assert CALLS == []


def test_settings_change_the_file(tmp_path):
    other = {**SETTINGS, "mode": "quality"}
    assert cache_file(tmp_path, "train", SETTINGS) != cache_file(tmp_path, "train", other)
    assert cache_file(tmp_path, "train", SETTINGS) != cache_file(tmp_path, "val", SETTINGS)


def test_parallel_build_matches_serial(tmp_path, records):
    a = build_or_load(records, tmp_path / "a.npz", SETTINGS, fake_compute, workers=0, progress=False)
    b = build_or_load(records, tmp_path / "b.npz", SETTINGS, fake_compute, workers=2, progress=False)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_file_source_names_unknown_ids(tmp_path):
    path = tmp_path / "props.json"
    path.write_text(json.dumps({"1": [[0, 0, 5, 5]], "2": [], "99": [[1, 1, 2, 2]], "abc": []}))
    with pytest.warns(UserWarning, match=r"not in the dataset.*99.*abc|not in the dataset.*abc.*99"):
        out = load_proposal_file(str(path), [1, 2, 3])
    assert out[1].shape == (1, 4) and out[2].shape == (0, 4) and 99 not in out


def test_file_source_bad_boxes(tmp_path):
    from detseg.data.errors import DatasetError

    path = tmp_path / "props.json"
    path.write_text(json.dumps({"1": [[0, 0, 5]]}))
    with pytest.raises(DatasetError, match="image 1"):
        load_proposal_file(str(path), [1])

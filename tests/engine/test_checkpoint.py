import logging
import pickle
import random

import numpy as np

import pytest
import torch
from torch import nn

from detseg.utils.checkpoint import CheckpointError, load_checkpoint, load_model_weights, save_checkpoint
from detseg.utils.rng import get_rng_state, seed_everything, set_rng_state


def _state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "iteration": int(value)}


def test_round_trip_and_no_leftover_files(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1.0))
    loaded = load_checkpoint(path)
    assert loaded["iteration"] == 1 and torch.equal(loaded["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1.0))

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    assert load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # the partial temp file is gone


def _assert_rejected(path, match=None):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_rejects_missing_and_empty_files(tmp_path):
    _assert_rejected(tmp_path / "nope.pt", match="not found")
    empty = tmp_path / "empty.pt"
    empty.touch()
    _assert_rejected(empty, match="empty")


def test_rejects_truncated_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_rejected(path, match="truncated")


def test_rejects_non_torch_and_foreign_files(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello, not a checkpoint\n")
    _assert_rejected(text, match="is not a torch checkpoint")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    _assert_rejected(noise, match="is not a torch checkpoint")  # not "holds Python objects"
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    _assert_rejected(foreign, match="not a detseg checkpoint")
    listing = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listing)
    _assert_rejected(listing, match="not a detseg checkpoint")


class _Evil:
    """Unpickling this would create a file: weights_only loading must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_rejects_malicious_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    zipped = tmp_path / "evil_zip.pt"
    torch.save({"model": {}, "iteration": 0, "payload": _Evil(marker)}, zipped)
    raw = tmp_path / "evil_raw.pt"
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    for path in (zipped, raw):
        _assert_rejected(path, match="refused")
        with pytest.raises(CheckpointError):
            load_model_weights(nn.Linear(2, 2), path)
    assert not marker.exists()


def test_load_model_weights_full_checkpoint_and_bare_state_dict(tmp_path, caplog):
    source = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    full = tmp_path / "full.pt"
    save_checkpoint(full, {"model": source.state_dict(), "iteration": 5})
    target = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    report = load_model_weights(target, full)
    assert torch.equal(target[1].weight, source[1].weight)
    assert report["missing"] == report["unexpected"] == report["shape_mismatch"] == []

    # A bare DDP-style state dict for a model with a different head: body loads, head reported.
    bare = tmp_path / "bare.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()} | {"module.extra": torch.zeros(1)}, bare)
    other = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5))
    with caplog.at_level(logging.WARNING):
        report = load_model_weights(other, bare)
    assert torch.equal(other[0].weight, source[0].weight)
    assert report["shape_mismatch"] == ["1.weight", "1.bias"]
    assert report["unexpected"] == ["extra"]
    assert "shape_mismatch" in caplog.text and "extra" in caplog.text
    with pytest.raises(CheckpointError, match="1.weight"):
        load_model_weights(other, bare, strict=True)


def test_load_model_weights_rejects_unrelated_state_dict(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"foo.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="none of its 1 tensors"):
        load_model_weights(nn.Linear(2, 2), path)


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    seed_everything(7)
    save_checkpoint(tmp_path / "rng.pt", {"model": {}, "iteration": 0, "rng": [get_rng_state()]})
    expected = (random.random(), float(np.random.rand()), torch.rand(2), np.random.randn())
    seed_everything(99)
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"][0])
    got = (random.random(), float(np.random.rand()), torch.rand(2), np.random.randn())
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2]) and got[3] == expected[3]

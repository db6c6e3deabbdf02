"""Issue 7 items 7, 13, 15: bad and hostile checkpoint files at every entry point; infer's output folder."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from tests.reliability.conftest import CONFIG, ROOT
from detseg.engine.trainer import Trainer
from tests.engine.engine_helpers import loader_factory, make_cfg, make_model


class Payload:
    """Unpickling this runs os.mkdir(marker): stands in for any command an attacker picks."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _bad_file(kind: str, path: Path, valid: Path, marker: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = valid.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "foreign":
        path.write_text("model:\n  weights: not a checkpoint\n")
    else:  # "payload": a torch file whose unpickling would run code
        torch.save({"format": "detseg-checkpoint", "version": 1, "model": Payload(marker), "iteration": 0}, path)


def _tool_args(tool: str, ckpt: Path, tmp_path: Path, overrides: list[str]) -> list:
    if tool == "train":  # --resume reads OUTPUT_DIR/last.pt
        return [CONFIG, "--output-dir", ckpt.parent, "--resume", *overrides, "train.max_iters=1"]
    if tool == "eval":
        return [CONFIG, "--checkpoint", ckpt, "--output-dir", tmp_path / "eval", *overrides]
    image = next(Path(p.split("=", 1)[1]) for p in overrides if p.startswith("data.val.img_dir="))
    return [CONFIG, "--checkpoint", ckpt, "--input", sorted(image.glob("*.jpg"))[0],
            "--output-dir", tmp_path / "infer", *overrides]


@pytest.mark.parametrize("kind", ["empty", "truncated", "foreign", "payload"])
@pytest.mark.parametrize("tool", ["train", "eval", "infer"])
def test_bad_checkpoint_gives_one_line_error(tool, kind, tmp_path, tiny_checkpoint, run_tool):
    valid, overrides = tiny_checkpoint
    ckpt, marker = tmp_path / "run" / "last.pt", tmp_path / "payload_ran"
    ckpt.parent.mkdir()
    _bad_file(kind, ckpt, valid, marker)
    code, out, err = run_tool(tool, *_tool_args(tool, ckpt, tmp_path, overrides))
    assert code != 0 and "Traceback" not in err + out
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and str(ckpt) in error_lines[0], err
    assert not marker.exists()
    if kind == "payload":
        assert "refused" in error_lines[0]


# ------------------------------------------------------------------ item 13: no unsafe torch.load, plain checkpoints
def test_every_torch_load_in_the_package_is_weights_only():
    offenders = []
    for path in [*ROOT.joinpath("detseg").rglob("*.py"), *ROOT.joinpath("tools").rglob("*.py")]:
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            call = text[match.start(): text.find(")", match.end()) + 1]
            if "weights_only=True" not in call:
                offenders.append(f"{path.relative_to(ROOT)}: {call}")
    assert not offenders


PLAIN = (torch.Tensor, int, float, str, bool, type(None))


def assert_plain(tree, where="checkpoint") -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            assert isinstance(key, (str, int)), f"{where}: key {key!r}"
            assert_plain(value, f"{where}.{key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            assert_plain(value, f"{where}[{i}]")
    else:
        assert isinstance(tree, PLAIN), f"{where} holds a {type(tree).__name__}"


def test_trainer_checkpoints_hold_only_plain_types(tmp_path):
    cfg = make_cfg(tmp_path, max_iters=3, solver={"optimizer": "adamw", "clip_grad_norm": 1.0})
    Trainer(cfg, make_model(0), loader_factory()).train()
    with open(tmp_path / "last.pt", "rb") as f:  # weights_only would already refuse custom classes
        state = torch.load(f, map_location="cpu", weights_only=True)
    assert_plain(state)


# ------------------------------------------------------------------ item 15: infer's output folder
def _tree(root: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_infer_writes_only_in_its_output_dir_and_never_overwrites(tmp_path, tiny_checkpoint, shapes_paths, run_tool):
    ckpt, overrides = tiny_checkpoint
    images = sorted(Path(shapes_paths["val_dir"]).glob("*.jpg"))[:2]
    out = tmp_path / "out"
    watched = {"tmp": tmp_path, "inputs": Path(shapes_paths["root"]), "checkpoint": ckpt.parent}
    before = {k: _tree(v) for k, v in watched.items()}
    args = [CONFIG, "--checkpoint", ckpt, "--input", *images, "--output-dir", out, *overrides]
    assert run_tool("infer", *args)[0] == 0
    after = {k: _tree(v) for k, v in watched.items()}
    new = set(after["tmp"]) - set(before["tmp"])
    assert all(Path(p).is_relative_to(out) for p in new) and len(new) == len(images) + 1
    assert after["inputs"] == before["inputs"] and after["checkpoint"] == before["checkpoint"]
    code, _, err = run_tool("infer", *args)
    assert code != 0 and "--overwrite" in err and _tree(out) == {p: t for p, t in after["tmp"].items() if p in new}
    assert run_tool("infer", *args, "--overwrite")[0] == 0

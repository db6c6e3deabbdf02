"""Start a backbone from another detseg run: ``model.backbone.weights: runs/<classifier>/last.pt``.

Any detseg training checkpoint whose model has a ``backbone`` (a classifier pre-trained with
arch "classifier", or a detector) can seed a new model's backbone. Only ``backbone.*`` tensors
are taken, and all of them must fit: a missing, extra or differently shaped tensor is an error
naming the key, because a partly loaded backbone would train on silently.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from detseg.utils.checkpoint import CheckpointError, is_detseg_checkpoint, require_torch_file, submodule_state

PREFIX = "backbone."
# BatchNorm counts its updates; FrozenBatchNorm2d (norm frozen_bn) has no such buffer
IGNORED_SUFFIXES = ("num_batches_tracked",)


def training_checkpoint(weights: str | None) -> bool:
    """Whether ``model.backbone.weights`` names a detseg training checkpoint (rather than a torchvision
    enum or a bare state dict); a path that does not exist is an error here, with the key named."""
    if weights is None:
        return False
    if _looks_like_path(weights) and not Path(weights).is_file():
        raise FileNotFoundError(f"model.backbone.weights: no file {weights} (a pre-training run's "
                                "checkpoint must exist before the model that starts from it is built; "
                                "`make shapes-backbone` writes runs/classifier_shape_crops/last.pt, or set "
                                "model.backbone.weights=null to train from scratch)")
    if Path(weights).is_file():  # before any check of width or names speaks of a file torch cannot read
        require_torch_file(Path(weights), "model.backbone.weights")
    return is_detseg_checkpoint(weights)


def _looks_like_path(weights: str) -> bool:
    """torchvision enum names ("DEFAULT", "IMAGENET1K_V2") have no separators or suffixes."""
    return "/" in weights or "\\" in weights or weights.endswith((".pt", ".pth", ".pth.tar", ".ckpt"))


def load_backbone_from_checkpoint(backbone: nn.Module, path: str | Path) -> None:
    """Copy a detseg checkpoint's ``backbone.*`` tensors into ``backbone`` (CheckpointError if they differ)."""
    theirs, config = submodule_state(path, PREFIX)
    own = backbone.state_dict()
    relevant = lambda keys: [k for k in keys if not k.endswith(IGNORED_SUFFIXES)]  # noqa: E731
    problems = []
    shapes = [k for k in own if k in theirs and own[k].shape != theirs[k].shape]
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} shape mismatch(es), e.g. '{PREFIX}{k}': checkpoint "
                        f"{tuple(theirs[k].shape)}, this model {tuple(own[k].shape)}")
    missing = relevant(k for k in own if k not in theirs)
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing from the checkpoint, e.g. '{PREFIX}{missing[0]}'")
    extra = relevant(k for k in theirs if k not in own)
    if extra:
        problems.append(f"{len(extra)} tensor(s) this backbone does not have, e.g. '{PREFIX}{extra[0]}'")
    if problems:
        raise CheckpointError(f"model.backbone.weights {path}: its backbone does not fit this one "
                              f"({'; '.join(problems)}). It was trained with {_describe(config)}.")
    backbone.load_state_dict({k: theirs[k] for k in own if k in theirs}, strict=False)


def _describe(config: dict) -> str:
    backbone = (config.get("model") or {}).get("backbone") or {}
    if not backbone:
        return "an unknown backbone (no stored config)"
    keys = ("name", "width", "norm", "dilation")
    return ", ".join(f"model.backbone.{k}={backbone.get(k)}" for k in keys if k in backbone)

"""Models from a config: one to train, or the one a checkpoint was trained as, and where they run.

The model's label space (``model.num_classes``, ``model.class_names``) is decided here and only here:
the config's values where it sets them, else the training set's (stored with the run), else, for a
trained model, the run's stored config.

``init_from`` starts a new run's model from another run's weights (``detseg train --init-from``): every
tensor of the same name and shape is taken, the others stay as built and are named in one line.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from detseg.app.auto_sizes import settings_from_run
from detseg.app.task import arch_task, require_matching_task
from detseg.config import Config, from_dict
from detseg.engine import precision
from detseg.models.build import build_model
from detseg.models.compat import upgrade_state_dict
from detseg.utils.checkpoint import CheckpointError, load_checkpoint, load_model_weights
from detseg.utils.distributed import select_device


def num_classes_for(cfg: Config, dataset=None) -> int:
    """``model.num_classes`` when set, else the dataset's category count."""
    if cfg.model.num_classes is not None:
        return cfg.model.num_classes
    if dataset is None:
        raise ValueError("model.num_classes is not set and there is no dataset to count categories from")
    return len(dataset.category_ids)


def settle_model_labels(cfg: Config, train_set) -> None:
    """Fill the model's open label space from the training set, so that config.yaml and the checkpoints
    carry it and eval/infer need no training data."""
    cfg.model.num_classes = num_classes_for(cfg, train_set)
    if cfg.model.class_names is None:
        cfg.model.class_names = list(train_set.class_names)


def build_model_for(cfg: Config, dataset=None):
    """A model to train: classes from the config or the dataset, optional ``model.weights`` to start from,
    the classification losses weighted by ``solver.class_weights_values`` under ``solver.class_weights: auto``."""
    require_matching_task(arch_task(cfg.model.arch), cfg.data.task, cfg.model.arch)
    model = build_model(cfg.model, num_classes_for(cfg, dataset), class_weights=class_weights_of(cfg))
    if cfg.model.weights:
        load_model_weights(model, cfg.model.weights, strict=False)
    return model


def class_weights_of(cfg: Config) -> list[float] | None:
    """The per-class loss weights the model is built with (None: unweighted)."""
    return cfg.solver.class_weights_values if cfg.solver.class_weights == "auto" else None


def init_from(model: torch.nn.Module, source: str | Path) -> str:
    """Load the weights of ``source`` (a run folder: its last.pt; or a checkpoint) into ``model`` where name and
    shape agree; the rest stays as built. Returns the one line that says what was taken and what was not."""
    path = init_checkpoint(source)
    weights = upgrade_state_dict({k.removeprefix("module."): v for k, v in load_checkpoint(path)["model"].items()})
    own = model.state_dict()
    taken = [k for k in own if k in weights and weights[k].shape == own[k].shape]
    if not taken:
        raise CheckpointError(f"--init-from {path}: none of its {len(weights)} tensors fits this model "
                              f"(another architecture?)")
    model.load_state_dict({k: weights[k] for k in taken}, strict=False)
    reshaped = [f"{k} {list(weights[k].shape)} -> {list(own[k].shape)}"
                for k in own if k in weights and k not in taken]
    parts = [f"--init-from {path}: {len(taken)} of {len(own)} tensors taken",
             _listed("kept as built (another shape)", reshaped),
             _listed("not in the checkpoint (kept as built)", [k for k in own if k not in weights]),
             _listed("not in this model (left out)", [k for k in weights if k not in own])]
    return "; ".join(part for part in parts if part)


def init_checkpoint(source: str | Path) -> Path:
    """The checkpoint ``--init-from`` names: a run folder's last.pt, or the file itself (which must exist)."""
    source = Path(source)
    path = source / "last.pt" if source.is_dir() else source
    if not path.is_file():
        where = "the folder holds no last.pt" if source.is_dir() else "no such file"
        raise FileNotFoundError(f"--init-from {source}: {where}")
    return path


def _listed(what: str, keys: list[str], most: int = 12) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return f"{what}: {', '.join(keys[:most])}{more}"


def load_trained_model(cfg: Config, checkpoint: str | Path, device) -> tuple[torch.nn.Module, Config]:
    """Build the model a checkpoint was trained as; label space and names come from its stored config."""
    state = load_checkpoint(checkpoint)
    stored = state.get("config")
    settings_from_run(cfg, stored)  # "auto" sizes and an open label space: what the run derived
    if stored is not None:
        trained = from_dict(Config, stored, prefix="")
        cfg.model.num_classes = cfg.model.num_classes or trained.model.num_classes
        cfg.model.class_names = cfg.model.class_names or trained.model.class_names
    # the checkpoint holds every weight: the backbone's starting weights (a download, another run's
    # file that may be gone by now) are not needed
    model_cfg = replace(cfg.model, backbone=replace(cfg.model.backbone, weights=None))
    model = build_model(model_cfg, num_classes_for(cfg))
    weights = upgrade_state_dict(state["model"] if "model" in state else state)  # older runs' names too
    try:
        model.load_state_dict(weights)
    except RuntimeError:  # pages of key names: say which models differ instead
        raise CheckpointError(_mismatch_message(checkpoint, stored, cfg, model, weights)) from None
    apply_test_overrides(model, cfg)
    return precision.prepare_model(model, cfg.train, device).eval(), cfg


def _mismatch_message(checkpoint, stored: dict | None, cfg: Config, model, weights: dict) -> str:
    expected = model.state_dict()
    missing = len(set(expected) - set(weights))
    unexpected = len(set(weights) - set(expected))
    reshaped = sum(1 for k, v in weights.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape))
    trained = _describe_model(from_dict(Config, stored, prefix="").model) if stored else "a model of unknown config"
    return (f"checkpoint {checkpoint} is {trained}; the config builds {_describe_model(cfg.model)} "
            f"({missing} weights missing, {unexpected} unexpected, {reshaped} of another shape): evaluate it with "
            f"the config it was trained with (its run folder's config.yaml)")


def _describe_model(model_cfg) -> str:
    backbone = model_cfg.backbone
    width = f" x{backbone.width:g}" if backbone.width != 1.0 else ""
    return f"a {model_cfg.arch} on {backbone.name}{width} with {model_cfg.num_classes} classes"


def apply_test_overrides(model, cfg: Config) -> None:
    """``test.score_thresh`` goes to the detection head: RoI heads (two-stage) or the dense head (one-stage)."""
    if cfg.test.score_thresh is None:
        return
    for name in ("roi_heads", "head"):
        head = getattr(model, name, None)
        if head is not None and hasattr(head, "score_thresh"):
            head.score_thresh = cfg.test.score_thresh


def device_for(cfg: Config) -> torch.device:
    return select_device(cfg.train.device)

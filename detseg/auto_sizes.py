"""The ``auto`` values of a config, filled in from the training set (at the start of training) or
from a trained run's stored config (evaluation, inference, export), so all of them use the same numbers.
The rules are in detseg.data.autosize."""
from __future__ import annotations

from detseg.config import Config, from_dict
from detseg.data.autosize import SizeStats, anchor_coverage, choose_anchor_sizes, choose_input_size
from detseg.data.build import AUTO_SIZE_KEYS, build_plain_dataset


def has_auto_sizes(cfg: Config) -> bool:
    return any(getattr(cfg.data, k) == "auto" for k in AUTO_SIZE_KEYS) or cfg.model.rpn.anchor_sizes == "auto"


def resolve_auto_sizes(cfg: Config) -> list[str]:
    """Replace every "auto" size in ``cfg`` (in place) by the value derived from the training set;
    returns the lines that say what was chosen (empty when nothing was "auto")."""
    if not has_auto_sizes(cfg):
        return []
    stats = SizeStats.of(build_plain_dataset(cfg.data, "train"))
    size = choose_input_size(stats)
    lines = []
    if any(getattr(cfg.data, k) == "auto" for k in AUTO_SIZE_KEYS):
        for key in AUTO_SIZE_KEYS:
            if getattr(cfg.data, key) == "auto":
                setattr(cfg.data, key, getattr(size, key))
        lines.append(f"auto input size: train short side {cfg.data.min_size_train} (long <= {cfg.data.max_size_train}), "
                     f"test {cfg.data.min_size_test} (long <= {cfg.data.max_size_test}); small objects "
                     f"{stats.small_side():.0f} px in {len(stats.image_hw)} images of median short side "
                     f"{int(sorted(stats.image_hw.min(axis=1))[len(stats.image_hw) // 2])} px")
    size.min_size_test, size.max_size_test = cfg.data.min_size_test, cfg.data.max_size_test
    if cfg.model.rpn.anchor_sizes == "auto":
        cfg.model.rpn.anchor_sizes = choose_anchor_sizes(stats, size, len(cfg.model.rpn.in_features))
    if cfg.model.arch in ("faster_rcnn", "mask_rcnn"):
        at_05, at_07 = anchor_coverage(stats, size, cfg.model.rpn.anchor_sizes, cfg.model.rpn.aspect_ratios)
        lines.append(f"anchors {cfg.model.rpn.anchor_sizes} on {cfg.model.rpn.in_features}: an anchor fits "
                     f"{100 * at_05:.1f}% of the objects at IoU 0.5, {100 * at_07:.1f}% at 0.7")
    return lines


def auto_sizes_from_run(cfg: Config, stored: dict | None) -> None:
    """Fill the "auto" sizes of ``cfg`` from a run's stored config (a checkpoint's "config")."""
    if not has_auto_sizes(cfg):
        return
    if stored is None:
        raise ValueError("the config has 'auto' sizes but the checkpoint stores no config to take them from; "
                         "pass the run's config.yaml instead")
    trained = from_dict(Config, stored, prefix="")
    for key in AUTO_SIZE_KEYS:
        if getattr(cfg.data, key) == "auto":
            setattr(cfg.data, key, getattr(trained.data, key))
    if cfg.model.rpn.anchor_sizes == "auto":
        cfg.model.rpn.anchor_sizes = trained.model.rpn.anchor_sizes


def auto_sizes_from_checkpoint(cfg: Config, checkpoint) -> None:
    """``auto_sizes_from_run`` with the config stored in a detseg checkpoint (read only when needed)."""
    if has_auto_sizes(cfg):
        from detseg.engine.checkpoint import load_checkpoint

        auto_sizes_from_run(cfg, load_checkpoint(checkpoint).get("config"))

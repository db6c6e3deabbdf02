"""What a config leaves to the data, fixed once from the training set (at the start of training) and
read back from a trained run's stored config (evaluation, inference, export), so all of them agree: the
``auto`` sizes (rules in detseg.data.autosize) and the label space (a VOC val split that lacks a class
must not renumber the others)."""
from __future__ import annotations

from dataclasses import replace

from detseg.config import Config, from_dict
from detseg.data.autosize import (
    InputSize, SizeStats, anchor_coverage, choose_anchor_sizes, choose_default_box_scales, choose_input_size,
)
from detseg.data.build import AUTO_SIZE_KEYS, build_plain_dataset

# (section, key) of every value that may be "auto"
AUTO_KEYS = (*(("data", k) for k in (*AUTO_SIZE_KEYS, "fixed_size")), ("model.rpn", "anchor_sizes"),
             ("model.ssd", "min_scale"), ("model.ssd", "max_scale"))


def _section(cfg: Config, path: str):
    node = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return node


def auto_keys(cfg: Config) -> list[tuple[str, str]]:
    return [(sec, key) for sec, key in AUTO_KEYS if getattr(_section(cfg, sec), key) == "auto"]


def has_auto_sizes(cfg: Config) -> bool:
    return bool(auto_keys(cfg))


def resolve_auto_sizes(cfg: Config) -> list[str]:
    """Replace every "auto" size in ``cfg`` (in place) by the value derived from the training set;
    returns the lines that say what was chosen (empty when nothing was "auto")."""
    wanted = auto_keys(cfg)
    if not wanted:
        return []
    stats = SizeStats.of(build_plain_dataset(cfg.data, "train"))
    size = choose_input_size(stats)
    lines = _resolve_input_size(cfg, stats, size)
    if cfg.data.fixed_size == "auto":
        cfg.data.fixed_size = [size.min_size_test, size.min_size_test]
        lines.append(f"auto input size: every image resized to {cfg.data.fixed_size} (small objects "
                     f"{stats.small_side():.0f} px in images of median short side {_median_short(stats)} px)")
    if ("model.rpn", "anchor_sizes") in wanted:
        lines.append(_resolve_anchors(cfg, stats, size))
    if {("model.ssd", "min_scale"), ("model.ssd", "max_scale")} & set(wanted):
        low, high = choose_default_box_scales(stats)
        ssd = cfg.model.ssd
        ssd.min_scale = low if ssd.min_scale == "auto" else ssd.min_scale
        ssd.max_scale = high if ssd.max_scale == "auto" else ssd.max_scale
        lines.append(f"default boxes: scales {ssd.min_scale} to {ssd.max_scale} of the image side over "
                     f"{ssd.in_features} (2nd-98th percentile of the objects)")
    return lines


def _resolve_input_size(cfg: Config, stats: SizeStats, size: InputSize) -> list[str]:
    if not any(getattr(cfg.data, k) == "auto" for k in AUTO_SIZE_KEYS):
        return []
    for key in AUTO_SIZE_KEYS:
        if getattr(cfg.data, key) == "auto":
            setattr(cfg.data, key, getattr(size, key))
    return [f"auto input size: train short side {cfg.data.min_size_train} (long <= {cfg.data.max_size_train}), "
            f"test {cfg.data.min_size_test} (long <= {cfg.data.max_size_test}); small objects "
            f"{stats.small_side():.0f} px in {len(stats.image_hw)} images of median short side "
            f"{_median_short(stats)} px"]


def _resolve_anchors(cfg: Config, stats: SizeStats, size: InputSize) -> str:
    rpn = cfg.model.rpn
    # anchors fit the test scale the config ends up with (a number given for it wins over the rule's)
    size = replace(size, min_size_test=cfg.data.min_size_test, max_size_test=cfg.data.max_size_test)
    rpn.anchor_sizes = choose_anchor_sizes(stats, size, len(rpn.in_features))
    at_05, at_07 = anchor_coverage(stats, size, rpn.anchor_sizes, rpn.aspect_ratios)
    return (f"anchors {rpn.anchor_sizes} on {rpn.in_features}: an anchor fits {100 * at_05:.1f}% of the "
            f"objects at IoU 0.5, {100 * at_07:.1f}% at 0.7")


def _median_short(stats: SizeStats) -> int:
    shorts = sorted(stats.image_hw.min(axis=1))
    return int(shorts[len(shorts) // 2])


def pin_label_space(data_cfg, train_set) -> None:
    """Detection data without an explicit label space gets the training set's: VOC class names (else each
    split sorts the names it finds) and COCO category ids; stored with the run."""
    if data_cfg.task != "detection":
        return
    if data_cfg.format == "voc" and data_cfg.classes is None:
        data_cfg.classes = list(train_set.class_names)
    elif data_cfg.format == "coco" and data_cfg.category_ids is None:
        data_cfg.category_ids = [int(c) for c in train_set.category_ids]


def settings_from_run(cfg: Config, stored: dict | None) -> None:
    """Fill the "auto" sizes of ``cfg``, and a label space it leaves open, from a run's stored config (a
    checkpoint's "config")."""
    wanted = auto_keys(cfg)
    if stored is None and wanted:
        raise ValueError("the config has 'auto' sizes but the checkpoint stores no config to take them from; "
                         "pass the run's config.yaml instead")
    if stored is None:
        return
    trained = from_dict(Config, stored, prefix="")
    for section, key in wanted:
        setattr(_section(cfg, section), key, getattr(_section(trained, section), key))
    same_data = cfg.data.format == trained.data.format and cfg.data.task == trained.data.task
    if same_data and cfg.data.classes is None:
        cfg.data.classes = trained.data.classes
    if same_data and cfg.data.category_ids is None:
        cfg.data.category_ids = trained.data.category_ids


def settings_from_checkpoint(cfg: Config, checkpoint) -> None:
    """``settings_from_run`` with the config stored in a detseg checkpoint (read only when needed)."""
    open_labels = (cfg.data.format == "voc" and cfg.data.classes is None) or (
        cfg.data.format == "coco" and cfg.data.category_ids is None)
    if has_auto_sizes(cfg) or open_labels:
        from detseg.utils.checkpoint import load_checkpoint

        settings_from_run(cfg, load_checkpoint(checkpoint).get("config"))

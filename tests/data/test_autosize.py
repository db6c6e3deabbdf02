"""The "auto" sizes of the custom configs: the rules (detseg.data.autosize) on made-up statistics, and
their round trip through a run's stored config."""
from __future__ import annotations

import math

import numpy as np
import pytest

from detseg.app.auto_sizes import resolve_auto_sizes, settings_from_run
from detseg.config import ConfigError, load_config
from detseg.config.loader import config_to_dict
from detseg.data.autosize import (
    SizeStats, anchor_coverage, choose_anchor_sizes, choose_default_box_scales, choose_input_size,
)
from detseg.data.build import build_dataset

CUSTOM = "configs/faster_rcnn/custom.yaml"
BCCD = ["data.train.root=data/bccd", "data.train.split=trainval", "data.val.root=data/bccd", "data.val.split=test"]


def _stats(image_hw, sides, labels=None) -> SizeStats:
    sides = np.asarray(sides, np.float64)
    labels = np.zeros(len(sides), np.int64) if labels is None else np.asarray(labels)
    return SizeStats(np.tile(np.asarray(image_hw, np.float64), (1, 1)), np.stack([sides, sides], 1),
                     np.zeros(len(sides), np.int64), labels)


def test_small_objects_set_the_scale_within_the_cpu_bounds():
    # 480x640 photographs whose small objects are 40 px: 480 * 24 / 40 = 288
    size = choose_input_size(_stats((480, 640), [40] * 20 + [100] * 80))
    assert (size.min_size_test, size.max_size_test) == (288, 384)
    assert size.min_size_train == [224, 256, 288, 320, 352] and size.max_size_train == 448
    # tiny objects in large images: the CPU cap (512), never more than the images' own size
    assert choose_input_size(_stats((1000, 1000), [10] * 50)).min_size_test == 512
    assert choose_input_size(_stats((400, 600), [5] * 50)).min_size_test == 384
    # large objects: the CPU floor (192), not a needless 480 px
    assert choose_input_size(_stats((480, 640), [200] * 50)).min_size_test == 192
    # small images are brought up to the floor
    assert choose_input_size(_stats((100, 100), [50] * 5)).min_size_test == 192


def test_a_rare_small_class_is_not_sacrificed_to_frequent_big_ones():
    sides = [100.0] * 95 + [20.0] * 5  # 5% of the objects, a whole class
    with_class = _stats((480, 640), sides, [0] * 95 + [1] * 5)
    assert with_class.small_side() == 20.0
    assert _stats((480, 640), sides).small_side() == pytest.approx(100.0)  # one class: the 10th percentile
    assert choose_input_size(with_class).min_size_test == 480  # 480 * 24 / 20 = 576, never above the images


def test_anchors_double_per_level_and_centre_on_the_objects():
    sides = [16.0] * 5 + [32.0] * 5 + [64.0] * 5
    stats = _stats((256, 256), sides)
    size = choose_input_size(stats)
    assert size.scale_for((256, 256)) == 1.0  # 256 * 24 / 16 = 384, capped at the images' own 256
    sizes = choose_anchor_sizes(stats, size, 4)
    flat = [s[0] for s in sizes]
    assert all(b == pytest.approx(2 * a, abs=0.2) for a, b in zip(flat, flat[1:]))
    centre = math.sqrt(flat[1] * flat[2])
    assert centre == pytest.approx(math.sqrt(np.quantile(sides, 0.02) * np.quantile(sides, 0.98)), rel=0.01)
    assert anchor_coverage(stats, size, [[16.0], [32.0], [64.0]], [0.5, 1.0, 2.0]) == (1.0, 1.0)
    assert anchor_coverage(stats, size, [[512.0]], [1.0]) == (0.0, 0.0)  # COCO-sized anchors miss them all


def test_resolved_on_bccd_and_stored_for_eval(tmp_path):
    cfg = load_config(CUSTOM, BCCD)
    assert cfg.data.format == "voc"
    with pytest.raises(ValueError, match="data.min_size_train is 'auto'"):
        build_dataset(cfg.data, "train", train=True)
    lines = resolve_auto_sizes(cfg)
    assert cfg.data.min_size_test == 288 and cfg.data.max_size_test == 384
    assert [len(level) for level in cfg.model.rpn.anchor_sizes] == [1, 1, 1, 1]
    assert "auto input size" in lines[0] and "anchors" in lines[1] and "% of the objects at IoU 0.5" in lines[1]
    fresh = load_config(CUSTOM, BCCD)
    settings_from_run(fresh, config_to_dict(cfg))  # what eval / infer / export do with a checkpoint
    assert config_to_dict(fresh) == config_to_dict(cfg)
    assert len(build_dataset(fresh.data, "val", train=False)) == 72


def test_data_format_follows_the_keys_given():
    coco = load_config(CUSTOM, ["data.train.ann_file=a.json", "data.train.img_dir=i"])
    assert coco.data.format == "coco"
    with pytest.raises(ConfigError, match="data.train.ann_file.*data.train.root"):
        load_config(CUSTOM)
    assert load_config("configs/faster_rcnn/shapes.yaml").data.format == "coco"  # explicit formats stay


def test_default_box_scales_span_the_objects_relative_to_the_image():
    stats = _stats((400, 400), [20.0] * 50 + [200.0] * 50)  # 5% and 50% of the image side
    assert choose_default_box_scales(stats) == (0.05, 0.5)
    assert choose_default_box_scales(_stats((100, 100), [1.0] * 50 + [99.0] * 50)) == (0.02, 0.95)  # clipped


def test_ssd_custom_config_resolves_its_square_input_and_scales():
    cfg = load_config("configs/ssd/custom.yaml", BCCD)
    lines = resolve_auto_sizes(cfg)
    assert cfg.data.fixed_size == [288, 288]
    assert 0.02 <= cfg.model.ssd.min_scale < cfg.model.ssd.max_scale <= 0.95
    assert any("default boxes" in line for line in lines)
    fresh = load_config("configs/ssd/custom.yaml", BCCD)
    settings_from_run(fresh, config_to_dict(cfg))
    assert config_to_dict(fresh) == config_to_dict(cfg)


def test_a_val_split_without_a_class_keeps_the_training_label_space(tmp_path, voc_xml):
    from PIL import Image

    from detseg.app.auto_sizes import pin_label_space

    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (tmp_path / sub).mkdir(parents=True)
    objects = {"a": [("car", 0, 1, 1, 10, 10), ("person", 0, 12, 12, 30, 25)], "b": [("person", 0, 5, 5, 20, 20)]}
    for name, objs in objects.items():
        Image.new("RGB", (40, 30)).save(tmp_path / "JPEGImages" / f"{name}.jpg")
        (tmp_path / "Annotations" / f"{name}.xml").write_text(voc_xml(name, (30, 40), objs))
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\n")
    (tmp_path / "ImageSets/Main/val.txt").write_text("b\n")  # no car in val
    data = [f"data.train.root={tmp_path}", "data.train.split=train", f"data.val.root={tmp_path}", "data.val.split=val",
            "data.min_size_test=32", "data.max_size_test=64", "data.min_size_train=[32]", "data.max_size_train=64"]
    cfg = load_config(CUSTOM, data + ["model.rpn.anchor_sizes=[[8],[16],[32],[64]]"])
    train_set = build_dataset(cfg.data, "train", train=True)
    assert build_dataset(cfg.data, "val", train=False).class_names == ["person"]  # what it was: person -> 0
    pin_label_space(cfg.data, train_set)
    val = build_dataset(cfg.data, "val", train=False)
    assert cfg.data.classes == ["car", "person"] and val.class_names == ["car", "person"]
    assert val[0]["labels"].tolist() == [1]  # person is label 1, as in training
    fresh = load_config(CUSTOM, data + ["model.rpn.anchor_sizes=[[8],[16],[32],[64]]"])
    settings_from_run(fresh, config_to_dict(cfg))  # eval with the config file and the run's checkpoint
    assert fresh.data.classes == ["car", "person"]

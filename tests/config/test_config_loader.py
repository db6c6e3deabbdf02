"""YAML config loading: schema checks with suggestions, overrides, one `_base_` level, safety.

Every config shipped under configs/ is also loaded, built and run once on a tiny image.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detseg.app.auto_sizes import resolve_auto_sizes
from detseg.config import Config, ConfigError, load_config
from detseg.models.build import build_model
from detseg.structures import Batch, Instances

REPO = Path(__file__).resolve().parents[2]
ALL_CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def empty_cfg(tmp_path) -> Path:
    return _write(tmp_path / "configs" / "arch" / "empty.yaml", "")


# ---------------------------------------------------------------- schema errors


def test_empty_file_gives_schema_defaults(empty_cfg):
    assert load_config(empty_cfg) == Config()


def test_unknown_override_key_names_it_and_suggests_closest(empty_cfg):
    with pytest.raises(ConfigError) as exc:
        load_config(empty_cfg, ["solver.lrr=0.1"])
    msg = str(exc.value)
    assert "'solver.lrr'" in msg
    assert "did you mean 'solver.lr'" in msg


def test_unknown_nested_yaml_key_names_full_path_and_suggests(tmp_path):
    cfg = _write(tmp_path / "configs" / "a" / "typo.yaml", "model:\n  backbone:\n    nam: resnet18\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    msg = str(exc.value)
    assert "'model.backbone.nam'" in msg
    assert "did you mean 'model.backbone.name'" in msg


def test_unknown_top_level_section_is_refused(empty_cfg):
    with pytest.raises(ConfigError, match="'modle'.*did you mean 'model'"):
        load_config(empty_cfg, ["modle.arch=faster_rcnn"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("solver.lr=fast", "solver.lr"),
        ("train.max_iters=1.5", "train.max_iters"),
        ("train.max_iters=true", "train.max_iters"),  # a bool is not an int
        ("train.amp=3", "train.amp"),
        ("data.min_size_train=800", "data.min_size_train"),  # scalar where a list is expected
        ("model.rpn.anchor_sizes=[[32], [big]]", "model.rpn.anchor_sizes[1][0]"),
        ("model.backbone=resnet18", "model.backbone"),  # scalar where a section is expected
    ],
)
def test_wrong_type_names_the_key(empty_cfg, override, key):
    with pytest.raises(ConfigError) as exc:
        load_config(empty_cfg, [override])
    assert f"'{key}'" in str(exc.value)


def test_wrong_type_in_yaml_names_the_key(tmp_path):
    cfg = _write(tmp_path / "configs" / "a" / "bad.yaml", "data:\n  batch_size: eight\n")
    with pytest.raises(ConfigError, match="'data.batch_size' expects int"):
        load_config(cfg)


def test_override_without_equals_is_refused(empty_cfg):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(empty_cfg, ["solver.lr"])


# ---------------------------------------------------------------- overrides


def test_overrides_parse_ints_floats_lists_bools_and_null(empty_cfg):
    cfg = load_config(
        empty_cfg,
        [
            "train.max_iters=123",
            "solver.lr=0.005",
            "solver.gamma=1",  # an int where a float is expected becomes a float
            "data.min_size_train=[320, 352]",
            "model.rpn.anchor_sizes=[[16], [32, 48]]",
            "model.backbone.weights=null",
            "solver.clip_grad_norm=2.5",
            "train.amp=true",
            "model.backbone.name=vgg16",
        ],
    )
    assert cfg.train.max_iters == 123 and type(cfg.train.max_iters) is int
    assert cfg.solver.lr == 0.005
    assert cfg.solver.gamma == 1.0 and type(cfg.solver.gamma) is float
    assert cfg.data.min_size_train == [320, 352]
    assert cfg.model.rpn.anchor_sizes == [[16.0], [32.0, 48.0]]
    assert cfg.model.backbone.weights is None
    assert cfg.solver.clip_grad_norm == 2.5
    assert cfg.train.amp is True
    assert cfg.model.backbone.name == "vgg16"
    # untouched keys keep their defaults
    assert cfg.solver.momentum == Config().solver.momentum


def test_override_null_replaces_a_file_value(tmp_path):
    cfg_path = _write(
        tmp_path / "configs" / "a" / "w.yaml", "model:\n  num_classes: 7\n  backbone:\n    weights: IMAGENET1K_V1\n"
    )
    cfg = load_config(cfg_path, ["model.backbone.weights=null", "model.num_classes=null"])
    assert cfg.model.backbone.weights is None
    assert cfg.model.num_classes is None


def test_later_override_wins_and_file_values_survive(tmp_path):
    cfg_path = _write(tmp_path / "configs" / "a" / "f.yaml", "solver:\n  lr: 0.1\n  momentum: 0.5\n")
    cfg = load_config(cfg_path, ["solver.lr=0.2", "solver.lr=0.3"])
    assert cfg.solver.lr == 0.3
    assert cfg.solver.momentum == 0.5


# ---------------------------------------------------------------- _base_


def _base_tree(root: Path) -> Path:
    _write(
        root / "configs" / "_base_" / "model.yaml",
        "model:\n"
        "  backbone: {name: resnet18, width: 0.5, freeze_at: 1}\n"
        "  neck: {name: fpn, out_channels: 64}\n"
        "  rpn: {aspect_ratios: [0.5, 1.0, 2.0, 4.0]}\n"
        "solver: {lr: 0.1, steps: [10, 20]}\n",
    )
    return _write(
        root / "configs" / "arch" / "child.yaml",
        "_base_: ../_base_/model.yaml\n"
        "model:\n"
        "  backbone: {width: 0.25}\n"
        "  rpn: {aspect_ratios: [1.0]}\n"
        "solver: {steps: [5]}\n",
    )


def test_base_merges_deeply(tmp_path):
    cfg = load_config(_base_tree(tmp_path))
    # the child's one nested key wins, the base's siblings stay
    assert cfg.model.backbone.width == 0.25
    assert cfg.model.backbone.name == "resnet18"
    assert cfg.model.backbone.freeze_at == 1
    assert cfg.model.neck.name == "fpn" and cfg.model.neck.out_channels == 64
    # lists are replaced, not concatenated
    assert cfg.model.rpn.aspect_ratios == [1.0]
    assert cfg.solver.steps == [5]
    assert cfg.solver.lr == 0.1
    # keys neither file sets keep the schema default
    assert cfg.model.roi == Config().model.roi


def test_overrides_apply_after_base(tmp_path):
    cfg = load_config(_base_tree(tmp_path), ["model.backbone.name=resnet34", "solver.lr=0.01"])
    assert cfg.model.backbone.name == "resnet34"
    assert cfg.model.backbone.width == 0.25
    assert cfg.solver.lr == 0.01


def test_base_next_to_the_file_is_allowed(tmp_path):
    _write(tmp_path / "configs" / "arch" / "base.yaml", "solver: {lr: 0.7}\n")
    child = _write(tmp_path / "configs" / "arch" / "child.yaml", "_base_: base.yaml\ntrain: {max_iters: 3}\n")
    cfg = load_config(child)
    assert (cfg.solver.lr, cfg.train.max_iters) == (0.7, 3)


def test_base_with_its_own_base_is_refused(tmp_path):
    _write(tmp_path / "configs" / "_base_" / "grand.yaml", "solver: {lr: 0.3}\n")
    _write(tmp_path / "configs" / "_base_" / "parent.yaml", "_base_: grand.yaml\nsolver: {momentum: 0.1}\n")
    child = _write(tmp_path / "configs" / "arch" / "child.yaml", "_base_: ../_base_/parent.yaml\n")
    with pytest.raises(ConfigError, match="one level"):
        load_config(child)


@pytest.mark.parametrize("target", ["../../etc/x.yaml", "ABSOLUTE"])
def test_base_outside_the_configs_tree_is_refused(tmp_path, target):
    outside = _write(tmp_path / "etc" / "x.yaml", "solver: {lr: 0.9}\n")  # exists, so only the location is wrong
    base = str(outside) if target == "ABSOLUTE" else target
    child = _write(tmp_path / "configs" / "arch" / "child.yaml", f"_base_: {base}\n")
    with pytest.raises(ConfigError, match="outside the configs tree"):
        load_config(child)


def test_missing_base_file_is_reported(tmp_path):
    child = _write(tmp_path / "configs" / "arch" / "child.yaml", "_base_: ../_base_/nope.yaml\n")
    with pytest.raises(ConfigError, match="not found"):
        load_config(child)


# ---------------------------------------------------------------- safety


def test_python_object_tag_is_refused_and_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    cfg = _write(
        tmp_path / "configs" / "a" / "evil.yaml",
        f'model:\n  arch: !!python/object/apply:os.system ["touch {marker}"]\n',
    )
    with pytest.raises(ConfigError):
        load_config(cfg)
    assert not marker.exists()
    assert not (tmp_path / "configs" / "a" / "MARKER").exists()


def test_python_object_tag_in_override_stays_a_plain_string(tmp_path, empty_cfg):
    marker = tmp_path / "MARKER2"
    text = f'!!python/object/apply:os.system ["touch {marker}"]'
    cfg = load_config(empty_cfg, [f"model.backbone.name={text}"])
    assert cfg.model.backbone.name == text  # kept as an inert string; build_model will reject the name
    assert not marker.exists()
    with pytest.raises(ValueError, match="model.backbone.name"):
        build_model(cfg.model, 3)


def test_python_object_tag_for_a_choice_is_refused_as_a_plain_string(tmp_path, empty_cfg):
    marker = tmp_path / "MARKER3"
    text = f'!!python/object/apply:os.system ["touch {marker}"]'
    with pytest.raises(ConfigError, match="'model.arch' must be one of .*got '!!python/object"):
        load_config(empty_cfg, [f"model.arch={text}"])  # model.arch is a closed choice: refused at load
    assert not marker.exists()


def test_top_level_list_is_refused(tmp_path):
    cfg = _write(tmp_path / "configs" / "a" / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(cfg)


# ---------------------------------------------------------------- shipped configs


def test_configs_folder_is_not_empty():
    assert ALL_CONFIGS, "no YAML found under configs/"


# semantic models return label maps, not Instances: tests/models/test_seg_configs.py builds configs/fcn and unet;
# one-stage models have no RoI heads: tests/models/test_dense_configs.py builds configs/yolo and configs/ssd;
# classifiers: tests/models/test_classifier_model.py builds configs/classification
BCCD_DATA = ["data.train.root=data/bccd", "data.train.split=trainval", "data.val.root=data/bccd",
             "data.val.split=test"]
DETECTION_CONFIGS = [p for p in ALL_CONFIGS if p.parent.name not in ("fcn", "unet", "yolo", "ssd", "classification")]


@pytest.mark.parametrize("path", DETECTION_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_shipped_config_builds_and_predicts(path):
    # no network in tests (weights=null); few proposals keep the RoI head cheap on a 64 px image
    # the custom configs take only the data: BCCD (shipped), from which their "auto" sizes are derived
    text = path.read_text()
    data = BCCD_DATA if "format: auto" in text or "_base_: custom.yaml" in text else []
    cfg = load_config(
        path, ["model.backbone.weights=null", "model.rpn.pre_nms_topk_test=64", "model.rpn.post_nms_topk_test=16",
               *data]
    )
    resolve_auto_sizes(cfg)
    num_classes = cfg.model.num_classes if cfg.model.num_classes is not None else 3
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes).eval()
    assert model.roi_heads.box_predictor.cls_score.out_features == num_classes + 1
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    # precomputed-proposal models (rcnn, sppnet, fast_rcnn) get their boxes with the batch
    proposals = None if cfg.model.proposals.source == "rpn" else [torch.tensor([[0, 0, 32, 32], [16, 16, 64, 64.0]])]
    batch = Batch(images=images, image_sizes=[(64, 64)], orig_sizes=[(64, 64)], image_ids=[0], proposals=proposals)
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        preds = model(batch, mode="predict")
    assert len(preds) == 1 and isinstance(preds[0], Instances)
    out = preds[0]
    assert out.boxes.shape == (len(out), 4) and out.scores.shape == (len(out),) and out.labels.shape == (len(out),)
    assert len(out) > 0
    assert torch.all((out.labels >= 0) & (out.labels < num_classes))
    assert torch.all((out.boxes >= 0) & (out.boxes <= 64))
    if model.has_masks:  # Mask R-CNN: one full-size binary mask per detection
        assert out.masks.dtype == torch.bool and out.masks.shape == (len(out), 64, 64)
    else:
        assert out.masks is None

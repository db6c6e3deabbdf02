"""Closed choices in the schema: a wrong value is refused at load time in one line that names the key,
the value, every allowed value and the closest one; each choice list matches the code that consumes it."""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
from torch import nn

from detseg.config import ConfigError, load_config, schema

REPO = Path(__file__).resolve().parents[2]
ALL_CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
BCCD_DATA = ["data.train.root=data/bccd", "data.train.split=trainval", "data.val.root=data/bccd",
             "data.val.split=test"]


def _choice_fields(cls=schema.Config, prefix: str = ""):
    """(dotted key, default, Literal choices) of every field that is or may be a closed choice."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _choice_fields(tp, f"{prefix}{f.name}.")
            continue
        options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, type(int | str)) else (tp,)
        choices = [c for o in options if typing.get_origin(o) is typing.Literal for c in typing.get_args(o)]
        if choices:
            yield f"{prefix}{f.name}", f, choices


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------- wrong values


@pytest.mark.parametrize("yaml_text, key, given, allowed, closest", [
    ("model:\n  arch: faster-rcnn\n", "model.arch", "faster-rcnn", schema.Arch, "faster_rcnn"),
    ("model:\n  backbone:\n    norm: batchnorm\n", "model.backbone.norm", "batchnorm", schema.Norm, None),
    ("model:\n  neck:\n    name: fpm\n", "model.neck.name", "fpm", schema.NeckName, "fpn"),
    ("model:\n  roi:\n    pooler: roi_alig\n", "model.roi.pooler", "roi_alig", schema.Pooler, "roi_align"),
    ("model:\n  proposals:\n    source: selectivesearch\n", "model.proposals.source", "selectivesearch",
     schema.ProposalSource, "selective_search"),
    ("model:\n  fcn:\n    variant: 4s\n", "model.fcn.variant", "4s", schema.FCNVariant, "8s"),
    ("model:\n  ssd:\n    head: light\n", "model.ssd.head", "light", schema.SSDPredictor, "lite"),
    ("data:\n  format: yolo\n", "data.format", "yolo", schema.DataFormat, None),
    ("data:\n  task: segmentation\n", "data.task", "segmentation", schema.Task, None),
    ("data:\n  augment: mosaic\n", "data.augment", "mosaic", schema.Augment, None),
    ("data:\n  on_bad_sample: ignore\n", "data.on_bad_sample", "ignore", schema.BadSamplePolicy, None),
    ("solver:\n  optimizer: adam\n", "solver.optimizer", "adam", schema.Optimizer, "adamw"),
    ("solver:\n  schedule: poly\n", "solver.schedule", "poly", schema.Schedule, None),
    ("train:\n  on_nonfinite: warn\n", "train.on_nonfinite", "warn", schema.NonFinitePolicy, None),
    ("train:\n  device: tpu\n", "train.device", "tpu", schema.Device, "cpu"),
])
def test_wrong_choice_names_key_value_and_every_allowed_value(tmp_path, yaml_text, key, given, allowed, closest):
    path = _write(tmp_path / "configs" / "a" / "bad.yaml", yaml_text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"config key '{key}' must be one of {', '.join(typing.get_args(allowed))}, got '{given}'")
    if closest is not None:
        assert msg.endswith(f"; did you mean '{closest}'?")


def test_a_number_for_a_choice_is_refused_with_the_closest_word(tmp_path):
    path = _write(tmp_path / "configs" / "a" / "bad.yaml", "model:\n  fcn:\n    variant: 8\n")
    with pytest.raises(ConfigError, match=r"^config key 'model.fcn.variant' must be one of 32s, 16s, 8s, "
                                          r"torchvision, got 8; did you mean '8s'\?$"):
        load_config(path)


@pytest.mark.parametrize("override, message", [
    ("train.amp=bf17", "config key 'train.amp' must be true or false, or one of auto, bf16, fp16, got 'bf17'; "
                       "did you mean 'bf16'?"),
    ("train.amp=3", "config key 'train.amp' must be true or false, or one of auto, bf16, fp16, got 3"),
    ("train.channels_last=maybe", "config key 'train.channels_last' must be true or false, or one of auto, "
                                  "got 'maybe'"),
    ("data.min_size_test=aut", "config key 'data.min_size_test' must be an integer, or one of auto, got 'aut'; "
                               "did you mean 'auto'?"),
])
def test_choice_beside_another_type_lists_both(tmp_path, override, message):
    path = _write(tmp_path / "configs" / "a" / "empty.yaml", "")
    with pytest.raises(ConfigError) as exc:
        load_config(path, [override])
    assert str(exc.value) == message


def test_choices_match_regardless_of_case_and_are_stored_as_the_schema_spells_them(tmp_path):
    path = _write(tmp_path / "configs" / "a" / "case.yaml", "solver:\n  optimizer: AdamW\n")
    cfg = load_config(path, ["model.neck.name=FPN", "train.amp=BF16"])
    assert (cfg.solver.optimizer, cfg.model.neck.name, cfg.train.amp) == ("adamw", "fpn", "bf16")


def test_every_default_is_one_of_its_choices():
    for key, f, choices in _choice_fields():
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        assert default in choices or not isinstance(default, str), key


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_shipped_config_loads(path):
    # the custom configs (data.format auto) take only the data: BCCD, shipped
    data = BCCD_DATA if "format: auto" in path.read_text() or "_base_: custom.yaml" in path.read_text() else []
    cfg = load_config(path, data)
    assert cfg.data.format != "auto"


# ---------------------------------------------------------------- the lists match their consumers


def _error(call) -> str:
    with pytest.raises((ValueError, RuntimeError)) as exc:
        call()
    return str(exc.value)


def test_arch_choices_are_the_model_builders():
    from detseg.models.build import ARCHITECTURES

    assert set(typing.get_args(schema.Arch)) == set(ARCHITECTURES)


def test_data_choices_are_the_data_registries():
    from detseg.data.build import DETECTION_FORMATS, TASKS
    from detseg.data.check import SPLIT_CHECKS
    from detseg.data.dense_transforms import AUGMENTS
    from detseg.data.errors import BAD_SAMPLE_POLICIES
    from detseg.data.proposals import PRECOMPUTED
    from detseg.data.selective_search import MODES

    assert set(typing.get_args(schema.DataFormat)) == {*DETECTION_FORMATS, "imagefolder", "auto"}
    assert set(typing.get_args(schema.DataFormat)) == {*SPLIT_CHECKS, "auto"}
    assert set(typing.get_args(schema.Task)) == set(TASKS)
    assert set(typing.get_args(schema.Augment)) == set(AUGMENTS)
    assert set(typing.get_args(schema.BadSamplePolicy)) == set(BAD_SAMPLE_POLICIES)
    assert set(typing.get_args(schema.ProposalSource)) == {"rpn", *PRECOMPUTED}
    assert set(typing.get_args(schema.SearchMode)) == set(MODES)


def test_engine_choices_are_the_engine_options():
    from detseg.engine.optim import LrSchedule, build_optimizer
    from detseg.engine.precision import amp_dtype
    from detseg.engine.nonfinite import NONFINITE_POLICIES
    from detseg.utils.distributed import select_device

    for name in typing.get_args(schema.Optimizer):
        build_optimizer(nn.Linear(2, 2), schema.SolverConfig(optimizer=name))
    for kind in typing.get_args(schema.Schedule):
        LrSchedule(kind, 10, 0, 1.0, [], 0.1, 0.0)
    assert set(typing.get_args(schema.NonFinitePolicy)) == set(NONFINITE_POLICIES)
    for name in ("auto", "cpu"):  # "cuda" needs a GPU; the error for an unknown name lists it
        select_device(name)
    assert all(d in _error(lambda: select_device("tpu")) for d in typing.get_args(schema.Device))
    amp_choices = {key: choices for key, _, choices in _choice_fields()}["train.amp"]
    assert all(setting in _error(lambda: amp_dtype("int4", "cpu")) for setting in amp_choices)


def test_model_part_choices_are_the_registries_names():
    """Each closed choice of a model part is exactly the names of the dict its builder looks up."""
    from detseg.models.backbones.base import NORM_LAYERS
    from detseg.models.build import FCN_HEADS, NECKS, POOLERS, choose
    from detseg.models.dense.ssd_head import SSD_PREDICTORS
    from detseg.models.necks.ssd_extra import EXTRA_BLOCKS

    registries = {schema.Norm: NORM_LAYERS, schema.NeckName: NECKS, schema.Pooler: POOLERS,
                  schema.ExtraStyle: EXTRA_BLOCKS, schema.SSDPredictor: SSD_PREDICTORS, schema.FCNVariant: FCN_HEADS}
    for choice, registry in registries.items():
        assert set(typing.get_args(choice)) == set(registry)
    message = _error(lambda: choose(POOLERS, "model.roi.pooler", "roi_allign"))
    assert "model.roi.pooler" in message and all(name in message for name in POOLERS)

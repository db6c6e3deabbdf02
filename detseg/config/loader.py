"""Read YAML configs into the schema: safe_load, one `_base_` level, key=value overrides.

Nothing named in a config is imported or executed; names are looked up in the
model/data registries later. A closed choice (a Literal in the schema) is checked here: matched
regardless of case, stored as the schema spells it, refused in one line listing the allowed values.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from detseg.config.schema import Config
from detseg.utils.files import atomic_write_text


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    raw = _read_with_base(Path(path))
    for item in overrides or []:
        key, value = _parse_override(item)
        _set_dotted(raw, key, value)
    cfg = from_dict(Config, raw, prefix="")
    resolve_data_format(cfg)
    return cfg


def resolve_data_format(cfg: Config) -> None:
    """``data.format: auto`` (the custom configs): "voc" when the training split is given as a VOC
    root, "coco" when as an annotation file; a config with neither is told which keys to set."""
    data = cfg.data
    if data.format != "auto":
        return
    if data.task == "classification":
        data.format = "imagefolder"
    elif data.train.ann_file and not data.train.root:
        data.format = "coco"
    elif data.train.root and not data.train.ann_file:
        data.format = "voc"
    else:
        raise ConfigError("data.format is 'auto': give the data as COCO (data.train.ann_file, data.train.img_dir, "
                          "data.val.ann_file, data.val.img_dir) or as Pascal VOC (data.train.root, data.train.split, "
                          "data.val.root, data.val.split), not both or neither")


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def dump_config(cfg: Config, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:  # includes python/object tags, which safe_load refuses
        raise ConfigError(f"{path}: not a plain YAML mapping: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _read_with_base(path: Path) -> dict:
    data = _read_yaml(path)
    base_name = data.pop("_base_", None)
    if base_name is None:
        return data
    base_path = _resolve_base(path, base_name)
    base = _read_yaml(base_path)
    if "_base_" in base:
        raise ConfigError(f"{base_path}: a _base_ config may not have its own _base_ (one level only)")
    return _deep_merge(base, data)


def _resolve_base(path: Path, base_name: str) -> Path:
    """`_base_` may point next to the file or into the same configs tree, nowhere else."""
    base_path = (path.parent / str(base_name)).resolve()
    allowed = {path.parent.resolve(), path.parent.parent.resolve()}
    if not any(base_path.is_relative_to(root) for root in allowed):
        raise ConfigError(f"{path}: _base_ '{base_name}' points outside the configs tree")
    return base_path


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key=value, e.g. solver.lr=0.01")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def from_dict(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(_unknown_key_message(prefix + str(key), str(key), names, prefix))
        kwargs[key] = _convert(hints[key], value, prefix + key)
    return cls(**kwargs)


def _unknown_key_message(full_key: str, key: str, names: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
    return f"unknown config key '{full_key}'{hint}"


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        return _convert_union(typing.get_args(tp), value, key)
    if origin is typing.Literal:
        return _convert_choice(typing.get_args(tp), value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' expects a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_convert(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
    return _convert_scalar(tp, value, key)


def _convert_union(options: tuple, value: Any, key: str) -> Any:
    if value is None and type(None) in options:
        return None
    candidates = [option for option in options if option is not type(None)]
    errors = []
    for option in candidates:
        try:
            return _convert(option, value, key)
        except ConfigError as exc:
            errors.append(str(exc))
    if len(candidates) == 1:
        raise ConfigError(errors[0])
    # a list (or mapping) that fits no option: the list option's error names the bad item, e.g. [1][0]
    same_shape = [e for option, e in zip(candidates, errors) if _same_shape(option, value)]
    if len(same_shape) == 1:
        raise ConfigError(same_shape[0])
    wanted = ", or ".join(_describe(option) for option in candidates)
    raise ConfigError(f"config key '{key}' must be {wanted}, got {value!r}{_suggestion(candidates, value)}")


def _same_shape(tp: Any, value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return typing.get_origin(tp) is list
    return isinstance(value, dict) and dataclasses.is_dataclass(tp)


def _convert_choice(choices: tuple, value: Any, key: str) -> str:
    """A closed choice: matched regardless of case (solver.optimizer "SGD" was always taken) and stored
    in the schema's spelling."""
    if isinstance(value, str):
        for choice in choices:
            if value.lower() == str(choice).lower():
                return choice
    raise ConfigError(f"config key '{key}' must be {_describe(typing.Literal[choices])}, got {value!r}"
                      f"{_suggestion((typing.Literal[choices],), value)}")


def _describe(tp: Any) -> str:
    """What a value of type ``tp`` looks like in YAML, for error messages."""
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if typing.get_origin(tp) is list:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _suggestion(options: tuple, value: Any) -> str:
    """"; did you mean 'x'?" for a string close to one of the Literal choices among ``options``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # YAML reads a bare 8 as a number: fcn.variant 8 means "8s"
    if not isinstance(value, str):
        return ""
    choices = [str(c) for tp in options if typing.get_origin(tp) is typing.Literal for c in typing.get_args(tp)]
    close = difflib.get_close_matches(value.lower(), choices, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _convert_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"config key '{key}' expects {getattr(tp, '__name__', tp)}, got {value!r}")

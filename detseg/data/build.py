"""Datasets and loaders from ``cfg.data``: the one place that knows the config's data keys."""
from __future__ import annotations

from torch.utils.data import DataLoader

from detseg.data.classification_transforms import build_classification_transforms
from detseg.data.collate import collate
from detseg.data.datasets.coco import CocoDetection
from detseg.data.dense_transforms import build_dense_transforms, uses_dense_transforms
from detseg.data.datasets.image_folder import ImageFolderClassification
from detseg.data.datasets.voc import VOCDetection
from detseg.data.datasets.voc_seg import VOCSegmentation
from detseg.data.transforms import build_transforms, resized_shape
from detseg.utils.distributed import get_rank, get_world_size

TASKS = ("detection", "semantic", "classification")
AUTO_SIZE_KEYS = ("min_size_train", "max_size_train", "min_size_test", "max_size_test")


def build_dataset(data_cfg, split: str, train: bool, with_masks: bool = False):
    """``split`` is "train" or "val"; ``train`` picks the augmenting transforms."""
    if is_classification(data_cfg):
        return _build_classification(data_cfg, split, train)
    _require_resolved(data_cfg)
    if uses_dense_transforms(data_cfg):  # data.augment / data.fixed_size: SSD and YOLO pipelines
        transforms = build_dense_transforms(data_cfg, train, with_masks)
    elif train:
        transforms = build_transforms(True, data_cfg.min_size_train, data_cfg.max_size_train,
                                      data_cfg.flip_prob, data_cfg.color_jitter, with_masks)
    else:
        transforms = build_transforms(False, data_cfg.min_size_test, data_cfg.max_size_test, 0.0, 0.0, with_masks)
    dataset = _detection_dataset(data_cfg, split, transforms, with_masks)
    dataset.needed_size = _needed_size(data_cfg, train)
    return dataset


def _needed_size(data_cfg, train: bool):
    """(h, w) -> the largest (h, w) the transforms resize such an image to, so that a large JPEG can be
    decoded at a reduced size (detseg.data.datasets.base.read_rgb_reduced); None where augmentations
    crop before resizing (data.augment ssd / yolo), which needs the full resolution."""
    if data_cfg.augment != "default":
        return None
    if data_cfg.fixed_size is not None:
        fixed = tuple(int(v) for v in data_cfg.fixed_size)
        return lambda hw: fixed
    sizes = data_cfg.min_size_train if train else data_cfg.min_size_test
    short = max(sizes) if isinstance(sizes, (list, tuple)) else int(sizes)
    long = data_cfg.max_size_train if train else data_cfg.max_size_test
    return lambda hw: resized_shape(hw, short, long)


def build_plain_dataset(data_cfg, split: str):
    """The split's detection dataset without transforms (annotations and image headers only): what the
    ``auto`` sizes are derived from, before any transform can be built."""
    return _detection_dataset(data_cfg, split, None, False)


def _detection_dataset(data_cfg, split: str, transforms, with_masks: bool):
    is_semantic(data_cfg)  # validates the task name first
    build = DETECTION_FORMATS.get(data_cfg.format)
    if build is None:
        raise ValueError(f"data.format must be one of {', '.join(DETECTION_FORMATS)} (or 'imagefolder' with "
                         f"data.task classification), got '{data_cfg.format}'")
    return build(data_cfg, getattr(data_cfg, split), split, transforms, with_masks)


def _coco_dataset(data_cfg, split_cfg, split: str, transforms, with_masks: bool):
    _require(split_cfg, split, ("ann_file", "img_dir"))
    return CocoDetection(split_cfg.ann_file, split_cfg.img_dir, transforms, data_cfg.category_ids,
                         with_masks, data_cfg.on_bad_sample, with_sem_seg=is_semantic(data_cfg))


def _voc_dataset(data_cfg, split_cfg, split: str, transforms, with_masks: bool):
    _require(split_cfg, split, ("root", "split"))
    if is_semantic(data_cfg):
        return VOCSegmentation(split_cfg.root, split_cfg.split, data_cfg.classes, transforms, data_cfg.on_bad_sample)
    return VOCDetection(split_cfg.root, split_cfg.split, data_cfg.classes, transforms,
                        on_bad_sample=data_cfg.on_bad_sample)


# data.format -> the detection / semantic dataset of a split ("imagefolder" is classification's own path)
DETECTION_FORMATS = {"coco": _coco_dataset, "voc": _voc_dataset}


def is_semantic(data_cfg) -> bool:
    """``data.task``: "semantic" samples carry sem_seg maps (arch fcn), "detection" ones do not."""
    if data_cfg.task not in TASKS:
        raise ValueError(f"data.task must be one of {', '.join(TASKS)}, got '{data_cfg.task}'")
    return data_cfg.task == "semantic"


def is_classification(data_cfg) -> bool:
    """``data.task`` "classification": ImageFolder data (``data.format: imagefolder``), one label per image."""
    is_semantic(data_cfg)  # validates the task name
    wants, folder = data_cfg.task == "classification", data_cfg.format == "imagefolder"
    if wants != folder:
        raise ValueError("data.task classification goes with data.format imagefolder (and only with it); "
                         f"got task '{data_cfg.task}', format '{data_cfg.format}'")
    return wants


def _build_classification(data_cfg, split: str, train: bool):
    _require(getattr(data_cfg, split), split, ("root",))
    transforms = build_classification_transforms(train, data_cfg.fixed_size, data_cfg.crop_scale,
                                                 data_cfg.flip_prob if train else 0.0, data_cfg.color_jitter)
    return ImageFolderClassification(getattr(data_cfg, split).root, transforms, data_cfg.on_bad_sample)


def _require_resolved(data_cfg) -> None:
    auto = [k for k in (*AUTO_SIZE_KEYS, "fixed_size") if getattr(data_cfg, k) == "auto"]
    if auto:
        raise ValueError(f"data.{auto[0]} is 'auto': it is derived from the training set when training starts "
                         "and stored in the run's config.yaml; evaluate or infer with that config (or the run's "
                         "checkpoint), or set a number")


def _require(split_cfg, split: str, keys: tuple[str, ...]) -> None:
    missing = [f"data.{split}.{k}" for k in keys if not getattr(split_cfg, k)]
    if missing:
        raise ValueError(f"set {', '.join(missing)} in the config or as key=value overrides")


def build_test_loader(dataset, batch_size: int, num_workers: int) -> DataLoader:
    """In order; in a distributed run rank r reads images r, r + W, ... and the evaluators gather."""
    shard = range(get_rank(), len(dataset), get_world_size())
    return DataLoader(dataset, batch_size=batch_size, sampler=shard, num_workers=num_workers,
                      collate_fn=collate, persistent_workers=False)

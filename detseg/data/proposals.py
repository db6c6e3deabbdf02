"""Precomputed proposals in the data path: sources, and a dataset wrapper that transforms them.

``ProposalDataset(dataset, proposals)`` adds ``sample["proposals"]`` (float32 [M, 4] xyxy in the
*transformed* image's pixels). The proposals go through the very same albumentations call as the
ground-truth boxes (appended as extra boxes, told apart by a label of -1), so whatever geometry the
pipeline applies (resize, flip, and any crop added later) moves them with the image; boxes that the
transform clips below 1 pixel are dropped, as for ground truth.

Sources (``model.proposals.source``): "selective_search" (computed once and cached, see
detseg.data.proposal_cache) and "file" (a JSON ``{image_id: [[x1, y1, x2, y2], ...]}`` in
original image pixels).
"""
from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from detseg.data.datasets.base import read_rgb, split_sample_key
from detseg.data.errors import DatasetError
from detseg.data.proposal_cache import ImageRecord, build_or_load, cache_file
from detseg.data.selective_search import selective_search

PROPOSAL_LABEL = -1
EMPTY = np.zeros((0, 4), np.float32)


def uses_precomputed(prop_cfg) -> bool:
    if prop_cfg.source != "rpn" and prop_cfg.source not in PRECOMPUTED:
        raise ValueError(f"model.proposals.source must be one of rpn, {', '.join(PRECOMPUTED)}, "
                         f"got '{prop_cfg.source}'")
    return prop_cfg.source != "rpn"


def ss_settings(prop_cfg) -> dict:
    return {"source": "selective_search", "mode": prop_cfg.mode, "max_proposals": prop_cfg.max_proposals,
            "min_size": float(prop_cfg.min_size), "max_side": prop_cfg.max_side}


def _ss_on_file(path: str, mode: str, max_proposals: int, min_size: float, max_side: int | None) -> np.ndarray:
    import cv2

    cv2.setNumThreads(1)
    try:
        image = read_rgb(path)
    except DatasetError as exc:
        print(f"proposals: {exc}; no proposals for it", file=sys.stderr)
        return EMPTY
    return selective_search(image, mode, max_proposals, min_size, max_side)


def image_records(dataset) -> list[ImageRecord]:
    return [ImageRecord(int(i), str(Path(dataset.get_image_info(k)[0]).resolve())) for k, i in enumerate(dataset.image_ids)]


def selective_search_proposals(prop_cfg, dataset, split: str, cache_dir: str, progress: bool = True) -> dict:
    from detseg.data.selective_search import _ximgproc

    _ximgproc()  # fail before spawning workers when cv2.ximgproc is missing
    settings = ss_settings(prop_cfg)
    compute = functools.partial(_ss_on_file, mode=prop_cfg.mode, max_proposals=prop_cfg.max_proposals,
                                min_size=float(prop_cfg.min_size), max_side=prop_cfg.max_side)
    return build_or_load(image_records(dataset), cache_file(cache_dir, split, settings), settings, compute,
                         prop_cfg.workers, progress)


def load_proposal_file(path: str, image_ids: list[int]) -> dict[int, np.ndarray]:
    """JSON {image_id: [[x1, y1, x2, y2], ...]} -> id -> float32 [M, 4]; unknown ids are named and ignored."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"model.proposals.file {path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"model.proposals.file {path}: expected an object {{image_id: [[x1, y1, x2, y2], ...]}}")
    known = set(int(i) for i in image_ids)
    out, unknown = {}, []
    for key, boxes in data.items():
        try:
            image_id = int(key)
        except ValueError:
            unknown.append(key)
            continue
        if image_id not in known:
            unknown.append(key)
            continue
        array = np.asarray(boxes, np.float32)
        if array.size == 0:
            array = EMPTY
        if array.ndim != 2 or array.shape[1] != 4 or not np.isfinite(array).all():
            raise DatasetError(f"model.proposals.file {path}: image {key} needs a list of [x1, y1, x2, y2] boxes")
        out[image_id] = array
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        warnings.warn(f"model.proposals.file {path}: {len(unknown)} image id(s) are not in the dataset and are "
                      f"ignored: {shown}", stacklevel=2)
    missing = len(known - set(out))
    if missing:
        warnings.warn(f"model.proposals.file {path}: {missing} of {len(known)} images have no proposals "
                      "(ground truth still joins them in training)", stacklevel=2)
    return out


def _file_proposals(prop_cfg, dataset, split: str, cache_dir: str, progress: bool = True) -> dict:
    if not prop_cfg.file:
        raise ValueError("model.proposals.source is 'file': set model.proposals.file to a JSON of boxes")
    return load_proposal_file(prop_cfg.file, dataset.image_ids)


# model.proposals.source -> where a split's precomputed proposals come from ("rpn" computes them in the model)
PRECOMPUTED = {"selective_search": selective_search_proposals, "file": _file_proposals}


def proposals_for(prop_cfg, dataset, split: str, cache_dir: str, progress: bool = True) -> dict[int, np.ndarray]:
    source = PRECOMPUTED.get(prop_cfg.source)
    if source is None:
        raise ValueError(f"model.proposals.source '{prop_cfg.source}' has no precomputed proposals "
                         f"(those that have: {', '.join(PRECOMPUTED)})")
    return source(prop_cfg, dataset, split, cache_dir, progress)


class ProposalDataset(Dataset):
    """Wraps a DetectionDataset; its transforms are applied here to image, targets and proposals together."""

    def __init__(self, dataset, proposals: dict[int, np.ndarray], max_per_image: int | None = None):
        if getattr(dataset, "with_masks", False):
            raise ValueError("precomputed proposals are not supported together with masks")
        self.base = dataset
        self.transforms = dataset.transforms
        dataset.transforms = None  # the base now returns the untransformed sample
        dataset.needed_size = None  # proposals are in original pixels: decode images at full size
        self.proposals = proposals
        self.max_per_image = max_per_image

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name):  # coco, category_ids, class_names, get_annotation, ...
        if name in ("base", "__setstate__", "__getstate__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        idx, seed = split_sample_key(key)
        sample = self.base[idx]
        props = self.proposals.get(sample["image_id"], EMPTY)[: self.max_per_image]
        if self.transforms is None:
            sample["proposals"] = torch.from_numpy(np.array(props, np.float32).reshape(-1, 4))
            return sample
        image = sample["image"].permute(1, 2, 0).numpy()
        n = len(sample["boxes"])
        boxes = np.concatenate([sample["boxes"].numpy(), props]).astype(np.float32)
        labels = np.concatenate([sample["labels"].numpy(), np.full(len(props), PROPOSAL_LABEL, np.int64)])
        iscrowd = np.concatenate([sample["iscrowd"].numpy(), np.zeros(len(props), bool)])
        image, boxes, labels, iscrowd, _ = self.transforms(image, boxes, labels, iscrowd, None, seed=seed)
        is_prop = labels == PROPOSAL_LABEL
        assert (~is_prop).sum() <= n
        sample["image"] = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        sample["boxes"] = torch.from_numpy(np.ascontiguousarray(boxes[~is_prop], np.float32).reshape(-1, 4))
        sample["labels"] = torch.from_numpy(np.asarray(labels[~is_prop], np.int64))
        sample["iscrowd"] = torch.from_numpy(np.asarray(iscrowd[~is_prop], bool))
        sample["proposals"] = torch.from_numpy(np.ascontiguousarray(boxes[is_prop], np.float32).reshape(-1, 4))
        return sample


def wrap_with_proposals(cfg, dataset, split: str, progress: bool = True):
    """The dataset itself when the model uses an RPN, else a ProposalDataset over the configured source."""
    prop_cfg = cfg.model.proposals
    if not uses_precomputed(prop_cfg):
        return dataset
    cache_dir = prop_cfg.cache_dir or str(Path(cfg.train.output_dir) / "proposals")
    proposals = proposals_for(prop_cfg, dataset, split, cache_dir, progress)
    empty = [int(i) for i in dataset.image_ids if len(proposals.get(int(i), EMPTY)) == 0]
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        warnings.warn(f"{split}: {len(empty)} image(s) have no proposals (ids {shown}); they are still trained on "
                      "their ground-truth boxes and get no detections at test time", stacklevel=2)
    return ProposalDataset(dataset, proposals, None if split == "train" else prop_cfg.max_test)

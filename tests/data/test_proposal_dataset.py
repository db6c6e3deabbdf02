"""Proposals follow the image through resize and flip (ProposalDataset)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from detseg.data.collate import collate
from detseg.data.datasets.coco import CocoDetection
from detseg.data.proposals import ProposalDataset
from detseg.data.transforms import build_transforms


def _dataset(shapes_paths, flip_prob, min_size=160):
    tf = build_transforms(True, [min_size], 1000, flip_prob=flip_prob)
    return CocoDetection(shapes_paths["train_json"], shapes_paths["train_dir"], tf)


def _raw(shapes_paths):
    return CocoDetection(shapes_paths["train_json"], shapes_paths["train_dir"], None)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_proposals_resized_and_flipped_with_the_image(shapes_paths, flip):
    raw = _raw(shapes_paths)
    props = {}
    for i in range(3):
        s = raw[i]
        h, w = s["orig_size"]
        extra = np.array([[0, 0, w / 2, h / 4], [w / 4, h / 3, w, h]], np.float32)
        props[s["image_id"]] = np.concatenate([s["boxes"].numpy(), extra])
    ds = ProposalDataset(_dataset(shapes_paths, flip), props)
    for i in range(3):
        s = ds[i]
        h, w = s["orig_size"]
        H, W = s["image"].shape[-2:]
        expected = torch.from_numpy(props[s["image_id"]]) * torch.tensor([W / w, H / h, W / w, H / h])
        if flip:
            expected = torch.stack([W - expected[:, 2], expected[:, 1], W - expected[:, 0], expected[:, 3]], 1)
        assert s["proposals"].dtype == torch.float32
        torch.testing.assert_close(s["proposals"], expected, atol=0.05, rtol=0)
        n = len(s["boxes"])
        torch.testing.assert_close(s["proposals"][:n], s["boxes"], atol=1e-3, rtol=0)  # gt boxes moved alike
        assert len(s["labels"]) == n and (s["labels"] >= 0).all()


def test_image_without_proposals_and_collate(shapes_paths):
    ds = ProposalDataset(_dataset(shapes_paths, 0.5), {})
    batch = collate([ds[0], ds[1]])
    assert [p.shape for p in batch.proposals] == [(0, 4), (0, 4)]
    assert len(ds) == len(ds.base) and ds.category_ids == ds.base.category_ids


def test_untransformed_dataset(shapes_paths):
    raw = _raw(shapes_paths)
    box = np.array([[1, 2, 30, 40]], np.float32)
    ds = ProposalDataset(raw, {raw.image_ids[0]: box})
    np.testing.assert_array_equal(ds[0]["proposals"].numpy(), box)


def test_wrap_warns_about_images_without_proposals(shapes_paths, tmp_path):
    import json

    from detseg.config import Config
    from detseg.data.proposals import wrap_with_proposals

    raw = _raw(shapes_paths)
    path = tmp_path / "p.json"
    path.write_text(json.dumps({str(raw.image_ids[0]): [[0, 0, 10, 10]]}))
    cfg = Config()
    cfg.model.proposals.source, cfg.model.proposals.file = "file", str(path)
    with pytest.warns(UserWarning, match="have no proposals"):
        ds = wrap_with_proposals(cfg, raw, "train")
    assert ds[0]["proposals"].shape == (1, 4) and ds[1]["proposals"].shape == (0, 4)

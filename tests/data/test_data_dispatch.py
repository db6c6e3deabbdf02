"""The data side's name -> builder tables: a name they do not hold (a config assembled in code, past the
loader's checks) is refused with the config key and the names they do hold."""
from __future__ import annotations

import pytest

from detseg.config.schema import DataConfig, ProposalsConfig
from detseg.data.build import build_dataset
from detseg.data.check import check_split
from detseg.data.dense_transforms import build_dense_transforms
from detseg.data.proposals import proposals_for, uses_precomputed
from detseg.data.selective_search import selective_search


def test_unknown_data_format_names_the_known_ones():
    data_cfg = DataConfig(format="yolo")
    with pytest.raises(ValueError, match=r"data.format must be one of coco, voc \(or 'imagefolder' .*got 'yolo'"):
        build_dataset(data_cfg, "train", train=False)
    with pytest.raises(ValueError, match="data.format must be one of coco, voc, imagefolder, got 'yolo'"):
        check_split(data_cfg, "train")


def test_unknown_augment_names_the_known_ones():
    with pytest.raises(ValueError, match="data.augment must be one of default, ssd, ssdlite, yolo, got 'mosaic'"):
        build_dense_transforms(DataConfig(augment="mosaic", fixed_size=[32, 32]), train=True)


def test_unknown_proposal_source_names_the_known_ones():
    with pytest.raises(ValueError, match="model.proposals.source must be one of rpn, selective_search, file"):
        uses_precomputed(ProposalsConfig(source="edge_boxes"))
    with pytest.raises(ValueError, match="'rpn' has no precomputed proposals .*selective_search, file"):
        proposals_for(ProposalsConfig(source="rpn"), None, "train", "")


def test_unknown_selective_search_mode_names_the_key():
    with pytest.raises(ValueError, match="model.proposals.mode must be one of fast, quality, got 'slow'"):
        selective_search(None, mode="slow")

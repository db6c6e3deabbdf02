"""Fixtures shared by all tests.

``shapes_root``: a tiny synthetic shapes dataset (12 train / 6 val images, seed 0), generated
once per test session into a temporary folder. Layout (see detseg.data.datasets.shapes)::

    annotations/instances_{train,val}.json, {train,val}/*.jpg, voc/{JPEGImages,Annotations,ImageSets/Main}

``shapes_paths``: the same as a dict of ready-made paths for CocoDetection / VOCDetection.
Treat both as read-only: they are shared by every test in the session.

Every in-process test runs "auto" precision as fp32 in NCHW (``full_precision_by_default``), so that the
suite's tolerances mean the same on a CPU with bf16 in hardware, where "auto" picks bf16 (and with AVX-512
channels_last), and on one without; the other paths are tested by asking for them
(tests/engine/test_precision.py).
"""
from __future__ import annotations

import os

import pytest

SHAPES_NUM_TRAIN = 12
SHAPES_NUM_VAL = 6


def pytest_configure(config):
    """Under pytest-xdist each worker gets its share of the cores, so that two workers on two cores do
    not run four OpenMP threads (spinning threads made a busy 2-core machine several times slower).
    The share goes to subprocesses too (the command-line and torchrun tests) through OMP_NUM_THREADS."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


@pytest.fixture(autouse=True)
def full_precision_by_default(monkeypatch):
    from detseg.engine import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_avx512", lambda: False)  # and NCHW, as on any CPU


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    from detseg.data.datasets.shapes import generate_shapes_dataset

    root = tmp_path_factory.mktemp("shapes")
    generate_shapes_dataset(root, num_train=SHAPES_NUM_TRAIN, num_val=SHAPES_NUM_VAL, seed=0, workers=1)
    return root


@pytest.fixture(scope="session")
def shapes_paths(shapes_root):
    return {
        "root": shapes_root,
        "train_json": shapes_root / "annotations" / "instances_train.json",
        "train_dir": shapes_root / "train",
        "val_json": shapes_root / "annotations" / "instances_val.json",
        "val_dir": shapes_root / "val",
        "voc_root": shapes_root / "voc",
    }

"""Distributed evaluation (2 gloo processes on CPU) equals the single-process result: the COCO evaluator's
gather, and the whole loop (detseg.app.evaluate: COCO, VOC and validation loss, files on rank 0 only)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from eval_batches import FakeModel, batch_of
from eval_coco_fixtures import CATEGORY_IDS, CLASS_NAMES, detection_dataset, make_coco_gt, mixed_predictions

import detseg.app.evaluate as app_evaluate
from detseg.config import Config
from detseg.evaluation import CocoEvaluator, gather_results

# Image 2 on both ranks, as a distributed sampler pads the last batch.
RANK_IMAGES = {0: [1, 2], 1: [3, 4, 2]}


def _coco_evaluate(image_ids):
    predictions = mixed_predictions()
    evaluator = CocoEvaluator(make_coco_gt(), CATEGORY_IDS, CLASS_NAMES, ("bbox", "segm"))
    evaluator.process(batch_of(image_ids), [predictions[i] for i in image_ids])
    return evaluator.evaluate(), evaluator.results


def _worker(rank: int, world_size: int, store_path: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world_size)
    try:
        gathered = gather_results([rank, rank])
        metrics, results = _coco_evaluate(RANK_IMAGES[rank])
        with open(f"{out_dir}/rank{rank}.pkl", "wb") as f:
            pickle.dump((gathered, metrics, results), f)
        dist.barrier()  # tear down together; a lone gloo teardown occasionally aborts
    finally:
        dist.destroy_process_group()


def test_gather_is_identity_without_process_group():
    items = [1, {"a": 2}]
    assert gather_results(items) is items


def test_distributed_evaluation_matches_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    outputs = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(2)]

    assert outputs[0][0] == [0, 0, 1, 1] and outputs[1][0] == []
    assert outputs[1][1] == {} and outputs[1][2] == []  # only rank 0 evaluates
    expected_metrics, expected_results = _coco_evaluate([1, 2, 3, 4])
    assert outputs[0][2] == expected_results  # rank 0 holds the whole dataset, image 2 once
    for iou_type, metrics in expected_metrics.items():
        np.testing.assert_array_equal(list(outputs[0][1][iou_type].values()), list(metrics.values()))


def _loop_evaluate(rank: int, image_ids, out_dir: str) -> dict:
    """The app loop over ``image_ids``; rank r's batches have validation loss r."""
    cfg = Config()
    cfg.data.format, cfg.train.device = "voc", "cpu"
    model = FakeModel(mixed_predictions().__getitem__, loss=float(rank))
    real_loader = app_evaluate.eval_loader
    app_evaluate.eval_loader = lambda cfg, dataset: [batch_of(image_ids)]  # this rank's share
    try:
        return app_evaluate.evaluate(model, detection_dataset(), cfg, torch.device("cpu"),
                                     f"{out_dir}/eval{rank}", with_loss=True)
    finally:  # the single-process reference runs in the test session: leave the module as it was
        app_evaluate.eval_loader = real_loader


def _loop_worker(rank: int, world_size: int, store_path: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world_size)
    try:
        metrics = _loop_evaluate(rank, RANK_IMAGES[rank], out_dir)
        with open(f"{out_dir}/loop{rank}.pkl", "wb") as f:
            pickle.dump(metrics, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_distributed_evaluation_loop_matches_single_process(tmp_path):
    mp.spawn(_loop_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (pickle.loads((tmp_path / f"loop{r}.pkl").read_bytes()) for r in range(2))

    assert rank1 == {} and not (tmp_path / "eval1").exists()  # only rank 0 scores and writes
    single = _loop_evaluate(0, [1, 2, 3, 4], str(tmp_path / "single"))
    assert list(rank0) == ["bbox", "voc", "val_loss"]
    for block in ("bbox", "voc"):
        np.testing.assert_array_equal(list(rank0[block].values()), list(single[block].values()))
    # loss 0 on rank 0's 2 images, 1 on rank 1's 3: the mean over every rank's images
    assert rank0["val_loss"] == pytest.approx({"loss": 0.6, "loss_fake": 0.6})
    names = {"metrics.json", "pr_curves.json", "confusion_matrix.json", "predictions.json"}
    assert {p.name for p in (tmp_path / "eval0").iterdir()} == names
    assert (tmp_path / "eval0/predictions.json").read_text() == (tmp_path / "single/eval0/predictions.json").read_text()

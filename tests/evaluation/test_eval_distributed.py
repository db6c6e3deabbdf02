"""Distributed evaluation (2 gloo processes on CPU) equals the single-process result."""
from __future__ import annotations

import pickle

import numpy as np
import torch.distributed as dist
import torch.multiprocessing as mp
from eval_batches import batch_of
from eval_coco_fixtures import CATEGORY_IDS, CLASS_NAMES, make_coco_gt, mixed_predictions

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

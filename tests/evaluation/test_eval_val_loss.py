"""Validation loss (detseg.evaluation.val_loss): image-weighted means of the loss terms, over ranks."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detseg.evaluation.val_loss import ValidationLoss

# (losses of a batch, images in it); rank 0 gets the first two batches, rank 1 the last one
BATCHES = [({"loss_a": 1.0, "loss_b": 0.5}, 4), ({"loss_a": 2.0, "loss_b": 1.0}, 2), ({"loss_a": 4.0, "loss_b": 0.0}, 1)]
EXPECTED_A = (1.0 * 4 + 2.0 * 2 + 4.0 * 1) / 7
EXPECTED_B = (0.5 * 4 + 1.0 * 2 + 0.0 * 1) / 7


def _fill(meter, batches):
    for losses, images in batches:
        meter.update({k: torch.tensor(v) for k, v in losses.items()}, images)
    return meter


def test_single_process_weighted_mean_and_total():
    result = _fill(ValidationLoss(), BATCHES).result()
    assert result == pytest.approx({"loss": EXPECTED_A + EXPECTED_B, "loss_a": EXPECTED_A, "loss_b": EXPECTED_B})
    assert list(result) == ["loss", "loss_a", "loss_b"]


def test_no_batches_gives_nothing():
    assert ValidationLoss().result() == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        shard = BATCHES[:2] if rank == 0 else BATCHES[2:]  # uneven shards: 6 images and 1
        torch.save(_fill(ValidationLoss(), shard).result(), os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_ranks_average_over_all_images(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result == pytest.approx({"loss": EXPECTED_A + EXPECTED_B, "loss_a": EXPECTED_A, "loss_b": EXPECTED_B})


def test_both_mode_of_a_multi_scale_sppnet_predicts_like_predict_mode():
    """SPPnet's multi-scale test predicts from other features than the loss: "both" must not drop it."""
    from pathlib import Path

    from detseg.config import load_config
    from detseg.models.build import build_model
    from detseg.structures import Batch

    torch.manual_seed(0)
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "sppnet" / "shapes.yaml",
                      ["model.backbone.width=0.25", "model.roi.head_fc_dims=[32]"])
    model = build_model(cfg.model, 3).eval()
    model.roi_heads.score_thresh = 0.0
    model.roi_heads.pooler.test_scales = [1.0, 2.0]
    g = torch.Generator().manual_seed(0)
    batch = Batch(images=torch.randint(0, 256, (1, 3, 64, 80), dtype=torch.uint8, generator=g),
                  image_sizes=[(64, 80)], orig_sizes=[(64, 80)], image_ids=[1],
                  boxes=[torch.tensor([[4.0, 4, 30, 30], [40, 10, 70, 50]])], labels=[torch.tensor([0, 2])],
                  iscrowd=[torch.zeros(2, dtype=torch.bool)],
                  proposals=[torch.tensor([[5.0, 5, 28, 31], [0, 0, 80, 64], [41, 12, 69, 47]])])
    with torch.no_grad():
        expected = model(batch, mode="predict")
        losses, predictions = model(batch, mode="both")
    assert {"loss_roi_cls", "loss_roi_box"} <= set(losses) and all(torch.isfinite(v) for v in losses.values())
    assert len(predictions[0]) > 0
    assert torch.equal(predictions[0].boxes, expected[0].boxes) and torch.equal(predictions[0].scores, expected[0].scores)

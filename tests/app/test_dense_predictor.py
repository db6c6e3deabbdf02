"""The Predictor (tools/infer.py) resizes like evaluation: to data.fixed_size for SSD and YOLO."""
import numpy as np
import torch

from detseg.config import config_to_dict, load_config
from detseg.utils.checkpoint import save_checkpoint
from detseg.models.build import build_model
from detseg.app.predictor import Predictor


def test_predictor_feeds_the_fixed_size_and_answers_in_image_pixels(tmp_path):
    cfg = load_config("configs/ssd/shapes.yaml", ["model.num_classes=3", "data.fixed_size=[128, 128]",
                                                  "test.score_thresh=0.0", "train.device=cpu"])
    torch.manual_seed(0)
    state = {"model": build_model(cfg.model).state_dict(), "config": config_to_dict(cfg), "iteration": 0}
    save_checkpoint(tmp_path / "ssd.pt", state)
    predictor = Predictor(cfg, tmp_path / "ssd.pt")
    image = np.random.default_rng(0).integers(0, 256, (90, 200, 3), dtype=np.uint8)
    resized = predictor.transform(image, np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, bool))[0]
    assert resized.shape == (128, 128, 3)
    pred = predictor(image)
    assert len(pred) > 0
    assert torch.all(pred.boxes[:, 0::2] <= 200) and torch.all(pred.boxes[:, 1::2] <= 90)
    assert pred.boxes[:, 2].max() > 128  # scaled back from the 128-wide input to the 200-wide image

"""test.compile: the compiled inference model gives the eager model's detections and keeps its state dict."""
import copy

import torch

from detseg.engine.compile import compile_for_inference
from tests.models.test_detector import _build, _train_batch


def test_compiled_parts_give_the_same_detections():
    model = _build().eval()
    model.roi_heads.score_thresh = 0.0
    compiled = copy.deepcopy(model)
    names = compile_for_inference(compiled)
    assert names == ["backbone", "neck", "proposal_generator.head", "roi_heads.box_head"]
    assert compiled.state_dict().keys() == model.state_dict().keys()
    batch = _train_batch()
    with torch.no_grad():
        expected, got = model(batch, mode="predict"), compiled(batch, mode="predict")
    for exp, out in zip(expected, got):
        assert len(out) == len(exp) > 0
        torch.testing.assert_close(out.scores, exp.scores, atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(out.boxes, exp.boxes, atol=0.05, rtol=1e-3)

"""detseg's Mask R-CNN R50-FPN equals torchvision's maskrcnn_resnet50_fpn: parameters, boxes, scores, labels, masks."""
import pytest
import torch

from detseg.config import load_config
from detseg.models.backbones.folded_norm import unfolded_norms
from detseg.models.build import build_model
from detseg.interop.torchvision_import import convert_state_dict, load_converted
from tests.models.test_torchvision_parity import _batch, _images
from tests.models.tv_reference import torchvision_mask_rcnn_r50_fpn

CONFIG = "configs/mask_rcnn/coco_r50_fpn_1x.yaml"


def _detseg_model():
    cfg = load_config(CONFIG, ["model.backbone.weights=null"])  # no download in tests
    return build_model(cfg.model)


def test_param_count_matches_torchvision():
    assert sum(p.numel() for p in _detseg_model().parameters()) == 44_401_393
    assert sum(p.numel() for p in torchvision_mask_rcnn_r50_fpn().parameters()) == 44_401_393


@pytest.mark.parametrize("sizes", [[(256, 384)], [(256, 384), (320, 256)]])
def test_detections_and_masks_match_torchvision(sizes):
    tv = torchvision_mask_rcnn_r50_fpn(min_size=256, max_size=384)
    tv.roi_heads.score_thresh = 0.0
    model = _detseg_model()
    load_converted(model, convert_state_dict("maskrcnn_resnet50_fpn", tv.state_dict()))
    model.roi_heads.score_thresh = 0.0
    model.eval()
    images = _images(1, sizes)
    # detseg folds fixed BatchNorm into the convolutions (the same arithmetic in another float order, see
    # test_folded_norm.py); the unfolded path is what equals torchvision's to the last bits
    with torch.no_grad(), unfolded_norms():
        expected = tv([img.float() / 255 for img in images])
        got = model(_batch(images), mode="predict")
    for exp, out in zip(expected, got):
        assert len(out) == len(exp["boxes"]) > 0
        torch.testing.assert_close(out.boxes, exp["boxes"], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(out.scores, exp["scores"], atol=1e-5, rtol=1e-4)
        assert torch.equal(out.labels + 1, exp["labels"])
        probs = exp["masks"][:, 0]
        assert out.masks.dtype == torch.bool and out.masks.shape == probs.shape
        differ = out.masks != (probs >= 0.5)
        # the batched paste equals torchvision's per-mask resize up to float rounding: a pixel may
        # only flip where torchvision's probability sits on the threshold
        assert torch.all((probs[differ] - 0.5).abs() < 1e-4), int(differ.sum())
        assert (probs >= 0.5).sum() > 0

"""detseg's Faster R-CNN R50-FPN equals torchvision's: parameter count and detections."""
import pytest
import torch

from detseg.config import load_config
from detseg.models.backbones.folded_norm import unfolded_norms
from detseg.models.build import build_model
from detseg.interop.torchvision_import import convert_state_dict, load_converted
from detseg.structures import Batch
from tests.models.tv_reference import torchvision_faster_rcnn_r50_fpn

CONFIG = "configs/faster_rcnn/coco_r50_fpn_1x.yaml"


def _detseg_model():
    # no network in tests: the config names ImageNet weights, which torchvision would download
    cfg = load_config(CONFIG, ["model.backbone.weights=null"])
    return cfg, build_model(cfg.model)


def test_param_count_matches_torchvision():
    _, model = _detseg_model()
    assert sum(p.numel() for p in model.parameters()) == 41_755_286
    tv = torchvision_faster_rcnn_r50_fpn()
    assert sum(p.numel() for p in tv.parameters()) == 41_755_286


def _images(seed: int, sizes):
    g = torch.Generator().manual_seed(seed)
    images = []
    for h, w in sizes:
        # smooth random blobs give the random network non-trivial, well-separated proposals
        low = torch.rand(3, h // 32, w // 32, generator=g)
        images.append((torch.nn.functional.interpolate(low[None], size=(h, w), mode="bilinear")[0] * 255).to(torch.uint8))
    return images


@pytest.mark.parametrize("sizes", [[(256, 384)], [(256, 384), (320, 256)]])
def test_detections_match_torchvision(sizes):
    tv = torchvision_faster_rcnn_r50_fpn(min_size=256, max_size=384)
    tv.roi_heads.score_thresh = 0.0
    cfg, model = _detseg_model()
    load_converted(model, convert_state_dict("fasterrcnn_resnet50_fpn", tv.state_dict()))
    model.roi_heads.score_thresh = 0.0
    model.eval()
    images = _images(0, sizes)
    # detseg folds fixed BatchNorm into the convolutions (the same arithmetic in another float order, see
    # test_folded_norm.py); the unfolded path is what equals torchvision's to the last bits
    with torch.no_grad(), unfolded_norms():
        # torchvision resizes inside the model: the sizes above are ones its resize leaves unchanged
        expected = tv([img.float() / 255 for img in images])
        batch = _batch(images)
        got = model(batch, mode="predict")
    for exp, out in zip(expected, got):
        assert len(out) == len(exp["boxes"]) > 0
        torch.testing.assert_close(out.boxes, exp["boxes"], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(out.scores, exp["scores"], atol=1e-5, rtol=1e-4)
        # detseg label k is torchvision class k + 1 (COCO id) in the 91-class configs
        assert torch.equal(out.labels + 1, exp["labels"])


def _batch(images):
    h = max(i.shape[1] for i in images)
    w = max(i.shape[2] for i in images)
    padded = torch.zeros(len(images), 3, h, w, dtype=torch.uint8)
    for k, img in enumerate(images):
        padded[k, :, : img.shape[1], : img.shape[2]] = img
    sizes = [tuple(i.shape[1:]) for i in images]
    return Batch(images=padded, image_sizes=sizes, orig_sizes=sizes, image_ids=list(range(len(images))))

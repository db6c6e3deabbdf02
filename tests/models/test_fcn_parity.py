"""detseg's torchvision-compatible FCN-ResNet50 equals torchvision's fcn_resnet50: parameters and outputs."""
import pytest
import torch
import torchvision

from detseg.config import load_config
from detseg.models.backbones.folded_norm import unfolded_norms
from detseg.models.build import build_model
from detseg.interop.torchvision_import import convert_state_dict, load_converted
from detseg.structures import Batch

CONFIG = "configs/fcn/coco_r50.yaml"
PARAMS = 35_322_218  # torchvision's documented num_params for fcn_resnet50 (21 classes + aux)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _torchvision_fcn(seed: int = 0):
    torch.manual_seed(seed)
    model = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=21,
                                                         aux_loss=True)
    for m in model.modules():  # random statistics, so eval-mode BatchNorm is not an identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def models():
    tv = _torchvision_fcn()
    cfg = load_config(CONFIG, ["model.backbone.weights=null"])  # no network in tests
    model = build_model(cfg.model)
    load_converted(model, convert_state_dict("fcn_resnet50", tv.state_dict()))
    return tv, model.eval()


def test_param_count_matches_torchvision(models):
    tv, model = models
    assert sum(p.numel() for p in tv.parameters()) == PARAMS
    assert sum(p.numel() for p in model.parameters()) == PARAMS


def _images(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g) for h, w in sizes]


def _tv_input(images):
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return torch.stack([(img.float() / 255 - mean) / std for img in images])


@pytest.mark.parametrize("sizes", [[(96, 128)], [(64, 96), (64, 96)]])
def test_outputs_match_torchvision(models, sizes):
    tv, model = models
    images = _images(sizes)
    batch = Batch(images=torch.stack(images), image_sizes=sizes, orig_sizes=sizes, image_ids=list(range(len(sizes))))
    # detseg folds fixed BatchNorm into the convolutions (the same arithmetic in another float order, see
    # test_folded_norm.py); the unfolded path is what equals torchvision's to the last bits
    with torch.no_grad(), unfolded_norms():
        expected = tv(_tv_input(images))
        features = model.backbone(model.preprocess(batch))
        logits = model.head(features, sizes[0])
        aux = model.aux_head(features, sizes[0])
        labels = model(batch, mode="predict")
    torch.testing.assert_close(logits, expected["out"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(aux, expected["aux"], atol=1e-4, rtol=1e-4)
    for got, exp in zip(labels, expected["out"].argmax(1)):
        assert got.shape == exp.shape and got.dtype == torch.int64
        assert torch.equal(got, exp)
        assert len(got.unique()) > 1  # a random net that predicts one class everywhere proves little


def test_import_rejects_foreign_keys(models):
    tv, model = models
    state = {**tv.state_dict(), "classifier.9.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="weights do not fit"):
        load_converted(model, convert_state_dict("fcn_resnet50", state))

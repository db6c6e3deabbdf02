"""torchvision reference models built with random weights, the way its pretrained ones are built."""
import torch
import torchvision
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d


def torchvision_faster_rcnn_r50_fpn(seed: int = 0, min_size: int = 800, max_size: int = 1333) -> FasterRCNN:
    return _r50_fpn_detector(FasterRCNN, seed, min_size, max_size)


def torchvision_mask_rcnn_r50_fpn(seed: int = 0, min_size: int = 800, max_size: int = 1333) -> MaskRCNN:
    return _r50_fpn_detector(MaskRCNN, seed, min_size, max_size)


def _r50_fpn_detector(cls, seed: int, min_size: int, max_size: int):
    torch.manual_seed(seed)
    body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    _randomize_frozen_bn(body)
    backbone = _resnet_fpn_extractor(body, trainable_layers=3)
    model = cls(backbone, num_classes=91, min_size=min_size, max_size=max_size).eval()
    _soften_predictor(model.roi_heads.box_predictor)
    return model


def _soften_predictor(predictor: torch.nn.Module) -> None:
    """Small logits, so softmax scores do not saturate to exact ties whose order is arbitrary."""
    torch.nn.init.normal_(predictor.cls_score.weight, std=1e-4)
    torch.nn.init.normal_(predictor.bbox_pred.weight, std=1e-4)


def _randomize_frozen_bn(module: torch.nn.Module) -> None:
    """Random frozen statistics so the test exercises the BN path, not an identity."""
    for m in module.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)

"""What ``tools/summary.py`` summarises: a backbone or classification network by name, or a config's model,
each with a synthetic input.

Names: a detseg backbone registry name gives that backbone (what a detector builds on; no classifier);
``with_classifier`` gives its full ImageNet classification network instead (``alexnet_v1``: AlexNetV1,
the others: torchvision's network of that name). Any other torchvision classification name (vgg19,
googlenet, ...) gives torchvision's full network as it runs at test time: GoogLeNet and Inception-v3
without their auxiliary training heads (``aux_logits=False``), as torchvision's documented GoogLeNet
parameter count (6,624,904; 13,004,888 with the heads).
"""
from __future__ import annotations

import difflib

import torch
import torchvision
from torch import nn

from detseg.config.schema import BackboneConfig
from detseg.models.backbones import BACKBONES, registry_key
from detseg.models.backbones.alexnet_v1 import INPUT_SIZE as ALEXNET_V1_SIZE
from detseg.models.backbones.alexnet_v1 import AlexNetV1
from detseg.models.build import build_backbone, build_model
from detseg.structures import Batch

DEFAULT_SIZE = 224  # torchvision's ImageNet crop
_NATIVE_SIZES = {"alexnet_v1": ALEXNET_V1_SIZE, "inception_v3": 299}
_OWN_CLASSIFIERS = {"alexnet_v1": AlexNetV1}
# test-time networks; init_weights=False: their default init warns, and the values do not matter here
_TV_KWARGS = {name: {"init_weights": False, "aux_logits": False} for name in ("googlenet", "inception_v3")}


def native_size(name: str) -> int:
    return _NATIVE_SIZES.get(name, DEFAULT_SIZE)


def torchvision_classifiers() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_named_network(name: str, with_classifier: bool = False) -> nn.Module:
    """Build on the current default device (``with torch.device("meta")`` builds in no time and memory)."""
    if registry_key(name) in BACKBONES and not with_classifier:  # timm/<model> too
        return build_backbone(BackboneConfig(name=name))
    if name in _OWN_CLASSIFIERS:
        return _OWN_CLASSIFIERS[name]()
    if name in torchvision_classifiers():
        return torchvision.models.get_model(name, weights=None, **_TV_KWARGS.get(name, {}))
    if registry_key(name) in BACKBONES:
        raise ValueError(f"backbone '{name}' has no classification network to add (--with-classifier); "
                         f"summarise it without the flag")
    known = list(BACKBONES) + torchvision_classifiers()
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"--backbone '{name}' is neither a detseg backbone ({', '.join(BACKBONES)}) nor a "
                     f"torchvision classification network{hint}")


def synthetic_batch(height: int, width: int, proposals: int | None = None, seed: int = 0) -> Batch:
    """One random uint8 image; ``proposals``: that many random boxes, for the models that read them."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (1, 3, height, width), dtype=torch.uint8, generator=g)
    batch = Batch(images=image, image_sizes=[(height, width)], orig_sizes=[(height, width)], image_ids=[0])
    if proposals:
        corner = torch.rand(proposals, 2, generator=g) * torch.tensor([width, height]) * 0.7
        extent = torch.rand(proposals, 2, generator=g) * torch.tensor([width, height]) * 0.3 + 8
        boxes = torch.cat([corner, corner + extent], 1)
        batch.proposals = [torch.minimum(boxes, torch.tensor([width, height, width, height], dtype=boxes.dtype))]
    return batch


def reads_precomputed_proposals(model_cfg) -> bool:
    """R-CNN, SPPnet and Fast R-CNN take their boxes from the batch (selective search or a file)."""
    return model_cfg.proposals.source != "rpn"


def build_config_model(cfg) -> nn.Module:
    """``cfg.model`` with random weights (nothing downloaded); model.num_classes unset: COCO's 80."""
    cfg.model.backbone.weights = None
    return build_model(cfg.model, cfg.model.num_classes or 80)

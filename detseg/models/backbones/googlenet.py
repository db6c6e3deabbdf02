"""GoogLeNet (Inception v1) on torchvision's definition: the maps after the inception stages.

``s8``: inception3b (480 channels), ``s16``: inception4e (832), ``s32``: inception5b (1024). The
auxiliary classifiers (``aux_logits``) only help train the ImageNet model and are left out. torchvision's
ImageNet weights expect inputs scaled to [-1, 1] (``transform_input``); with them the backbone converts
the ImageNet-normalised images it receives, as torchvision's model does.
"""
from __future__ import annotations

import torch
from torch import Tensor

from detseg.models.backbones.base import (
    apply_norm_choice, load_local_weights, require_full_width, resolve_weights, torchvision_model,
)
from detseg.models.backbones.chain import ChainBackbone

_STEM = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2"]
_STAGES = [["inception3a", "inception3b"],
           ["maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"],
           ["maxpool4", "inception5a", "inception5b"]]
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class GoogLeNetBackbone(ChainBackbone):
    def __init__(self, name="googlenet", weights=None, norm="bn", freeze_at=0, width=1.0):
        super().__init__()
        require_full_width(width, name)
        enum, local = resolve_weights(name, weights)
        # with an enum torchvision sets aux_logits, init_weights and transform_input itself (and drops the
        # aux heads after loading); without one, skip the init only when a file replaces it
        kwargs = {} if enum is not None else dict(aux_logits=False, init_weights=local is None)
        net = torchvision_model(name, enum, **kwargs)
        if local is not None:
            load_local_weights(net, local)
        apply_norm_choice(net, norm, name)
        for path in _STEM + [p for stage in _STAGES for p in stage]:
            setattr(self, path, getattr(net, path))
        self.transform_input = net.transform_input
        self.set_chain(_STEM, _STAGES, freeze_at)

    def prepare(self, images: Tensor) -> Tensor:
        if not self.transform_input:
            return images
        # undo the ImageNet normalisation, then map [0, 1] to [-1, 1]
        mean = torch.tensor(_IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        return images * (std / 0.5) + (mean - 0.5) / 0.5

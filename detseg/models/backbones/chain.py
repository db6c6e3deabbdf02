"""Backbones run as a chain of named submodules: a stem, then stages that each end at one output map.

Subclasses keep torchvision's attribute names (its state dicts load unchanged) and describe the chain by
module paths. Each stage's map is measured by one dry run at ``PROBE_SIZE`` pixels when the chain is
set, so ``output_spec()`` is what ``forward()`` returns; stages must end at distinct strides. ``freeze_at``
k freezes the stem and the first k - 1 stages (as ResNet's: 1 the stem, 2 also the first stage);
``compute_only`` stops after the deepest stage a model reads.
"""
from __future__ import annotations

import torch
from torch import Tensor

from detseg.models.backbones.base import Backbone, freeze_modules
from detseg.models.layers.features import FeatureSpec, stride_key

PROBE_SIZE = 64


class ChainBackbone(Backbone):
    def set_chain(self, stem: list[str], stages: list[list[str]], freeze_at: int) -> None:
        self._stem, self._stages = list(stem), [list(stage) for stage in stages]
        self._num_stages = len(self._stages)
        self._spec = self._probe()
        groups = [self._stem, *self._stages]
        freeze_modules([self.get_submodule(path) for group in groups[:freeze_at] for path in group])

    def prepare(self, images: Tensor) -> Tensor:
        """What the stem reads; GoogLeNet re-normalises here for its ImageNet weights."""
        return images

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def compute_only(self, names: list[str]) -> None:
        keys = list(self._spec)
        if names and all(name in keys for name in names):
            self._num_stages = 1 + max(keys.index(name) for name in names)
            # never run, so never given a gradient: DDP would wait for one without find_unused_parameters
            for stage in self._stages[self._num_stages:]:
                for path in stage:
                    self.get_submodule(path).requires_grad_(False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x, features = self._run(self._stem, self.prepare(images)), {}
        for key, stage in zip(self._spec, self._stages[: self._num_stages]):
            x = features[key] = self._run(stage, x)
        return features

    def _run(self, paths: list[str], x: Tensor) -> Tensor:
        for path in paths:
            x = self.get_submodule(path)(x)
        return x

    def _probe(self) -> dict[str, FeatureSpec]:
        device = next(self.parameters()).device  # "meta" too: tools/summary.py builds there
        modes = {module: module.training for module in self.modules()}
        self.eval()
        spec = {}
        with torch.no_grad():
            x = self._run(self._stem, torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE, device=device))
            for stage in self._stages:
                x = self._run(stage, x)
                stride = PROBE_SIZE // x.shape[-1]
                spec[stride_key(stride)] = FeatureSpec(x.shape[1], stride)
        for module, training in modes.items():
            module.train(training)
        if len(spec) != len(self._stages):
            raise RuntimeError(f"{type(self).__name__}: two stages end at one stride ({list(spec)})")
        return spec

"""Fixed BatchNorm folded into the convolution before it.

A frozen BatchNorm (and any BatchNorm in eval mode) is a per-channel affine map, so
``bn(conv(x))`` equals one convolution with weight ``W * scale`` and bias ``shift``. Folding at
every call (the scale is a C-vector, the product is tiny) removes a multiply and an add over the
whole activation, forward and backward, while the modules, state-dict keys and gradients stay
those of torchvision's ResNet: ``W`` still receives the gradient, through the product.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from detseg.models.layers.inference_weights import inference_weights


_folding = True


@contextlib.contextmanager
def unfolded_norms() -> Iterator[None]:
    """Run every norm as its own module inside this block: bit-exact comparisons with torchvision, and
    per-layer tables (tools/summary.py) that should show each convolution and norm separately."""
    global _folding
    before, _folding = _folding, False
    try:
        yield
    finally:
        _folding = before


def is_fixed_norm(norm: nn.Module) -> bool:
    """Normalisation that is an affine map with constant coefficients at this call."""
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return isinstance(norm, nn.BatchNorm2d) and not norm.training and norm.track_running_stats


def _folded(conv: nn.Conv2d, norm: nn.Module) -> tuple[Tensor, Tensor]:
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    shift = norm.bias - norm.running_mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    return conv.weight * scale.reshape(-1, 1, 1, 1), shift


def conv_norm(x: Tensor, conv: nn.Conv2d, norm: nn.Module) -> Tensor:
    """``norm(conv(x))``, as one convolution when the norm is fixed (in inference, with the folded
    weights kept: detseg.models.layers.inference_weights)."""
    if not (_folding and is_fixed_norm(norm)):
        return norm(conv(x))
    sources = (conv.weight, conv.bias, norm.weight, norm.bias, norm.running_mean, norm.running_var)
    weight, shift = inference_weights(conv, "folded", lambda: _folded(conv, norm), sources)
    return F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups)


def _shortcut(block: nn.Module, x: Tensor) -> Tensor:
    down = block.downsample
    if down is None:
        return x
    if isinstance(down, nn.Sequential) and len(down) == 2 and isinstance(down[0], nn.Conv2d):
        return conv_norm(x, down[0], down[1])
    return down(x)


class FoldedBottleneck(Bottleneck):
    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(conv_norm(x, self.conv1, self.bn1), inplace=True)
        out = F.relu(conv_norm(out, self.conv2, self.bn2), inplace=True)
        out = conv_norm(out, self.conv3, self.bn3)
        return F.relu(out.add_(_shortcut(self, x)), inplace=True)


class FoldedBasicBlock(BasicBlock):
    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(conv_norm(x, self.conv1, self.bn1), inplace=True)
        out = conv_norm(out, self.conv2, self.bn2)
        return F.relu(out.add_(_shortcut(self, x)), inplace=True)


_FOLDED = {Bottleneck: FoldedBottleneck, BasicBlock: FoldedBasicBlock}


def fold_norms_at_call(module: nn.Module) -> nn.Module:
    """Give every torchvision ResNet block of ``module`` the folding forward, in place.

    Only the class (hence ``forward``) changes: the block keeps its submodules, so weights, state
    dicts and torchvision checkpoints are untouched, and trainable BatchNorm in training mode still
    runs as BatchNorm (``conv_norm`` folds only fixed norms).
    """
    for block in module.modules():
        folded = _FOLDED.get(type(block))
        if folded is not None:
            block.__class__ = folded
    return module

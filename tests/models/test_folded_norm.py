"""Folding fixed BatchNorm into convolutions changes neither outputs, gradients nor state dicts."""
import copy

import pytest
import torch
import torchvision
from torchvision.models.resnet import Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from detseg.models.backbones.folded_norm import FoldedBottleneck, conv_norm, fold_norms_at_call, is_fixed_norm


def randomise_norms(net: torch.nn.Module) -> None:
    """Non-trivial statistics and affine parameters, so a wrong fold cannot pass by accident."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d)):
            c = m.weight.shape[0]
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)


@pytest.mark.parametrize("norm_layer", [FrozenBatchNorm2d, torch.nn.BatchNorm2d])
def test_folded_resnet_equals_torchvision(norm_layer):
    torch.manual_seed(0)
    ref = torchvision.models.resnet50(weights=None, norm_layer=norm_layer).eval()
    randomise_norms(ref)
    folded = fold_norms_at_call(copy.deepcopy(ref))
    assert isinstance(folded.layer2[0], FoldedBottleneck)
    assert folded.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), ref(x), atol=1e-3, rtol=1e-3)  # float rounding of the fold


def test_frozen_fold_keeps_gradients_in_training():
    torch.manual_seed(0)
    block = Bottleneck(64, 16, norm_layer=FrozenBatchNorm2d)
    randomise_norms(block)
    folded = fold_norms_at_call(copy.deepcopy(block))
    x = torch.randn(2, 64, 12, 12)
    out_ref, out = block(x), folded(x)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    grads_ref = torch.autograd.grad(out_ref.square().sum(), list(block.parameters()))
    grads = torch.autograd.grad(out.square().sum(), list(folded.parameters()))
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, atol=1e-3, rtol=1e-4)


def test_trainable_batchnorm_is_not_folded_in_training():
    conv, bn = torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4)
    assert not is_fixed_norm(bn.train()) and is_fixed_norm(bn.eval()) and is_fixed_norm(FrozenBatchNorm2d(4))
    x = torch.randn(4, 3, 8, 8)
    bn.train()
    out = conv_norm(x, conv, bn)
    # batch statistics were used (per-channel mean ~0) and the running stats moved
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert bn.running_mean.abs().sum() > 0

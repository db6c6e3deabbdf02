"""FCN heads: Long et al.'s skip architecture (32s/16s/8s) and torchvision's FCNHead.

Both map backbone features to logits over the padded input, ``[B, num_classes + 1, Hp, Wp]``; the loss
is shared (detseg.models.seg.sem_seg), the Segmentor maps the logits to label maps. Heads are sized
from the backbone's output_spec only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detseg.models.layers.features import FeatureSpec
from detseg.models.seg.sem_seg import semantic_loss
from detseg.structures import Batch



def bilinear_kernel(channels: int, factor: int) -> Tensor:
    """[C, C, 2f, 2f] transposed-conv weight that upsamples each channel bilinearly by ``factor``."""
    size = 2 * factor
    center = factor - 0.5  # the kernel's centre falls between its two middle taps
    taps = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = taps[:, None] * taps[None, :]
    return weight


class LearnedUpsample(nn.ConvTranspose2d):
    """x ``factor`` transposed conv, initialised to bilinear interpolation and trained with the rest.

    Kernel 2f, stride f, padding f/2 maps n pixels to exactly n*f with each input pixel's centre
    on the centre of the f x f block it covers, so no crop offsets are needed between the skips.
    """

    def __init__(self, channels: int, factor: int):
        if factor < 2 or factor % 2:
            raise ValueError(f"FCN upsampling factors must be even, got {factor}")
        super().__init__(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels, factor))


class BilinearUpsample(nn.Module):
    """x ``factor`` fixed bilinear upsampling: LearnedUpsample's geometry and initial weights, frozen
    (per channel, as a depthwise transposed conv). The paper fixes its final upsampling like this."""

    def __init__(self, channels: int, factor: int):
        super().__init__()
        self.factor = factor
        kernel = bilinear_kernel(1, factor).expand(channels, 1, -1, -1).clone()
        self.register_buffer("kernel", kernel, persistent=False)  # derived, so not in checkpoints

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose2d(x, self.kernel, stride=self.factor, padding=self.factor // 2, groups=x.shape[1])


def _fc_layers(in_channels: int, dims: list[int], kernel: int, dropout: float) -> tuple[nn.Sequential, int]:
    """The paper's fc6/fc7 as convolutions: the first k x k, the rest 1x1, each + ReLU + dropout."""
    layers: list[nn.Module] = []
    for i, dim in enumerate(dims):
        k = kernel if i == 0 else 1
        layers += [nn.Conv2d(in_channels, dim, k, padding=k // 2), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_channels = dim
    return nn.Sequential(*layers), in_channels


class FCNSkipHead(nn.Module):
    """FCN-32s/16s/8s: score the deepest map, then repeatedly upsample x2 (learned) and add the
    score of the next shallower map; a final upsampling (fixed bilinear as in the paper, or learned
    with ``learn_final_upsampling``) reaches the input resolution."""

    def __init__(self, spec: dict[str, FeatureSpec], in_features: list[str], num_classes: int, *,
                 fc_dims: list[int], fc_kernel: int, dropout: float, learn_final_upsampling: bool,
                 hard_pixel_fraction: float | None):
        super().__init__()
        self.in_features = list(in_features)
        strides = [spec[name].stride for name in self.in_features]
        if any(deep < shallow or deep % shallow for deep, shallow in zip(strides, strides[1:])):
            raise ValueError(f"model.fcn.in_features {self.in_features} must go from the deepest map to the "
                             f"shallowest, each stride a multiple of the next; their strides are {strides}")
        channels = num_classes + 1
        self.fc, top_channels = _fc_layers(spec[self.in_features[0]].channels, fc_dims, fc_kernel, dropout)
        in_channels = [top_channels] + [spec[name].channels for name in self.in_features[1:]]
        self.scores = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        for skip in self.scores[1:]:  # the paper zero-initialises new skip scores: training starts from 32s
            nn.init.zeros_(skip.weight)
            nn.init.zeros_(skip.bias)
        self.ups = nn.ModuleList(_upsample(channels, deep // shallow) for deep, shallow in zip(strides, strides[1:]))
        self.final_up = _upsample(channels, strides[-1], learned=learn_final_upsampling)
        self.hard_fraction = hard_pixel_fraction

    def forward(self, features: dict[str, Tensor], out_hw: tuple[int, int]) -> Tensor:
        logits = self.scores[0](self.fc(features[self.in_features[0]]))
        for name, score, up in zip(self.in_features[1:], self.scores[1:], self.ups):
            skip = score(features[name])
            logits = _fit(up(logits), skip.shape[-2:]) + skip
        return _fit(self.final_up(logits), out_hw)

    def loss(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        return semantic_loss(logits, batch, "fcn", hard_fraction=self.hard_fraction)


class InterpolationHead(nn.Module):
    """torchvision's FCNHead: 3x3 conv to in/4 channels, BN, ReLU, dropout 0.1, 1x1 score; then
    bilinear interpolation (not learned) to the input size. Also the aux classifier."""

    def __init__(self, in_feature: str, spec: dict[str, FeatureSpec], num_classes: int,
                 name: str = "fcn", loss_weight: float = 1.0):
        super().__init__()
        self.in_feature, self.name, self.loss_weight = in_feature, name, loss_weight
        in_channels = spec[in_feature].channels
        inter = in_channels // 4
        # indices 0/1 (conv, BN) line up with torchvision's classifier.0/1 for weight import
        self.block = nn.Sequential(nn.Conv2d(in_channels, inter, 3, padding=1, bias=False), nn.BatchNorm2d(inter),
                                   nn.ReLU(), nn.Dropout(0.1))
        self.score = nn.Conv2d(inter, num_classes + 1, 1)

    def forward(self, features: dict[str, Tensor], out_hw: tuple[int, int]) -> Tensor:
        logits = self.score(self.block(features[self.in_feature]))
        return F.interpolate(logits, size=tuple(out_hw), mode="bilinear", align_corners=False)

    def loss(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        return semantic_loss(logits, batch, self.name, self.loss_weight)


def _upsample(channels: int, factor: int, learned: bool = True) -> nn.Module:
    if factor == 1:
        return nn.Identity()
    return LearnedUpsample(channels, factor) if learned else BilinearUpsample(channels, factor)


def _fit(x: Tensor, hw) -> Tensor:
    """Crop (or zero-pad) to ``hw``: odd-sized maps from backbones without exact halving."""
    h, w = hw[0], hw[1]  # no int(): an ONNX trace keeps sizes read from tensor shapes dynamic
    x = x[..., :h, :w]
    if x.shape[-2] < h or x.shape[-1] < w:
        x = F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))
    return x


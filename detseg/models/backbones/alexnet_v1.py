"""The original two-GPU AlexNet (Krizhevsky, Sutskever & Hinton 2012), as a classifier and as a backbone.

Differences from torchvision's single-GPU ``alexnet`` (see alexnet.py): 96-256-384-384-256 channels,
conv2/conv4/conv5 grouped in two (each GPU's half of the kernels sees only its own half of the
previous layer; conv3 and the fc layers cross over), local response normalisation after conv1's and
conv2's ReLU, no padding on conv1 and no adaptive pooling before fc6.

Input size: 227, not the paper's 224. With an unpadded 11x11 stride-4 conv1, (227 - 11) / 4 + 1 = 55
is the 55x55 map the paper describes, and the overlapping 3x3/2 pools then give 27, 13 and the 6x6
that fc6's 256 * 6 * 6 inputs need; 224 would give 54, 26, 12 and 5.

LRN uses PyTorch's (and Caffe's) convention, which divides ``alpha`` by ``size``; the paper's k = 2,
n = 5, beta = 0.75 and the customary alpha = 1e-4 of those reimplementations.
"""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from detseg.models.backbones.base import Backbone, freeze_first_convs, load_local_weights, norm_layer_factory
from detseg.models.layers.features import FeatureSpec

INPUT_SIZE = 227
CHANNELS = (96, 256, 384, 384, 256)
GROUPS = (1, 2, 1, 2, 2)  # conv3 reads both GPUs' conv2 maps; conv2, conv4 and conv5 only their own


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2)  # overlapping: 3 > 2


def alexnet_v1_features(width: float = 1.0) -> nn.Sequential:
    """conv1..conv5 with their ReLU, LRN and pools; ``width`` scales every conv's channels (kept even
    so the two groups split them evenly)."""
    c1, c2, c3, c4, c5 = (max(2, 2 * round(c * width / 2)) for c in CHANNELS)
    g = GROUPS
    return nn.Sequential(
        nn.Conv2d(3, c1, 11, stride=4, groups=g[0]), nn.ReLU(inplace=True), _lrn(), _pool(),
        nn.Conv2d(c1, c2, 5, padding=2, groups=g[1]), nn.ReLU(inplace=True), _lrn(), _pool(),
        nn.Conv2d(c2, c3, 3, padding=1, groups=g[2]), nn.ReLU(inplace=True),
        nn.Conv2d(c3, c4, 3, padding=1, groups=g[3]), nn.ReLU(inplace=True),
        nn.Conv2d(c4, c5, 3, padding=1, groups=g[4]), nn.ReLU(inplace=True),
        _pool(),
    )


class AlexNetV1(nn.Module):
    """The ImageNet classifier: ``features`` then fc6 (4096), fc7 (4096), fc8 (num_classes) with dropout
    before fc6 and fc7. Needs INPUT_SIZE x INPUT_SIZE images (fc6 reads exactly 256 x 6 x 6)."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        self.features = alexnet_v1_features(width)
        pool5_channels = self.features[-3].out_channels
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(pool5_channels * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, images: Tensor) -> Tensor:
        pool5 = self.features(images)
        if pool5.shape[-2:] != (6, 6):
            raise ValueError(f"AlexNetV1's fc6 reads a 6x6 pool5; a {tuple(images.shape[-2:])} input gives "
                             f"{tuple(pool5.shape[-2:])} (use {INPUT_SIZE}x{INPUT_SIZE})")
        return self.classifier(pool5.flatten(1))


class AlexNetV1Backbone(Backbone):
    """``s16``: conv5 after its ReLU; ``s32``: pool5. Built from AlexNetV1's ``features``: the 58.6M
    parameters of its fc classifier are left out, as every backbone leaves its classifier out.

    ``weights``: None or a local state dict of AlexNetV1 (there are no published weights of this
    variant); ``norm`` is checked but has nothing to act on (AlexNet normalises with LRN, not a norm
    layer); ``freeze_at`` k freezes the first k convs; ``width`` scales the channels.
    """

    def __init__(self, name="alexnet_v1", weights=None, freeze_at=0, norm="bn", width=1.0):
        super().__init__()
        norm_layer_factory(norm)  # reject a misspelt model.backbone.norm like every other backbone
        net = AlexNetV1(width=width)
        if weights is not None:
            load_local_weights(net, _local_file(weights))
        self.features = net.features
        channels = self.features[-3].out_channels
        self._spec = {"s16": FeatureSpec(channels, 16), "s32": FeatureSpec(channels, 32)}
        freeze_first_convs(self.features, freeze_at)

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        s16 = self.features[:-1](images)  # through conv5's ReLU
        return {"s16": s16, "s32": self.features[-1](s16)}


def _local_file(weights: str) -> Path:
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"model.backbone.weights '{weights}': alexnet_v1 has no published weights, "
                         "give a local AlexNetV1 state dict file")
    return path

"""The backbone contract: features keyed by stride, described by their shapes."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detseg.models.layers.features import FeatureSpec


class Backbone(nn.Module):
    """Returns ``dict[str, Tensor]`` keyed ``"s<stride>"``; heads read ``output_spec()``."""

    def output_spec(self) -> dict[str, FeatureSpec]:
        raise NotImplementedError

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def compute_only(self, names: list[str]) -> None:
        """The model reads only these maps: a backbone built of stages may stop after the deepest of
        them (YOLO on s16 need not run ResNet's layer4). The default computes everything."""


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) or 1, channels)


NORM_LAYERS = {"bn": nn.BatchNorm2d, "frozen_bn": FrozenBatchNorm2d, "gn": _group_norm}  # model.backbone.norm


def norm_layer_factory(norm: str):
    """Normalisation choices shared by every backbone; named in ``model.backbone.norm``."""
    if norm not in NORM_LAYERS:
        raise ValueError(f"model.backbone.norm must be one of {', '.join(NORM_LAYERS)}; got '{norm}'")
    return NORM_LAYERS[norm]


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d for a FrozenBatchNorm2d holding the same statistics.

    For torchvision definitions that take no ``norm_layer`` (VGG-BN).
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)
    return module


def freeze_modules(modules: list[nn.Module]) -> None:
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(False)


def freeze_first_convs(features: nn.Sequential, freeze_at: int) -> None:
    """AlexNet-style stacks: freeze_at k freezes the first k convs (with their ReLU/pool); k >= the
    number of convs freezes all of them."""
    if freeze_at <= 0:
        return
    convs = [i for i, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
    end = convs[freeze_at] if freeze_at < len(convs) else len(features)
    freeze_modules([features[:end]])


def resolve_weights(builder, weights: str | None):
    """Map ``model.backbone.weights`` to a torchvision weights enum (None, a name) or a local file.

    Returns ``(enum_or_None, local_path_or_None)``. torchvision downloads an enum's
    file on first use, which needs a network; a local path never does.
    """
    if weights is None:
        return None, None
    if Path(weights).is_file():
        return None, Path(weights)
    from torchvision.models import get_model_weights

    enum = get_model_weights(builder)
    try:
        return enum[weights], None
    except KeyError:
        names = ", ".join(w.name for w in enum)
        raise ValueError(
            f"model.backbone.weights '{weights}' is neither a file nor one of {enum.__name__}: {names}"
        ) from None


class WeightsDownloadError(ValueError):
    """torchvision could not fetch pre-trained weights (no network); the message says where to put the file."""


def torchvision_model(name: str, enum, **kwargs) -> nn.Module:
    """``torchvision.models.<name>(weights=enum, **kwargs)``; a failed weights download becomes one line
    naming the URL and the cache file to place it in, instead of a urllib traceback."""
    import torchvision

    try:
        return getattr(torchvision.models, name)(weights=enum, **kwargs)
    except OSError as exc:  # URLError, socket and HTTP errors are OSErrors
        if enum is None:
            raise
        raise WeightsDownloadError(download_failure_message(enum, exc)) from exc


def download_failure_message(enum, exc: Exception) -> str:
    import os

    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    home = os.environ.get("TORCH_HOME", "not set")
    reason = getattr(exc, "reason", exc)
    return (f"cannot download the weights {type(enum).__name__}.{enum.name} from {enum.url} ({reason}); "
            f"without a network, copy that file to {target} (torch's cache: $TORCH_HOME/hub/checkpoints, "
            f"TORCH_HOME={home}), or set model.backbone.weights to a local file")


def torchvision_or_scaled(name: str, weights: str | None, width: float, scaled) -> nn.Module:
    """torchvision's ``name`` with its weights (an enum or a local file) at width 1.0, else ``scaled()``:
    the width-scaled definition, which has no published weights."""
    refuse_scaled_weights(width, weights)
    if width != 1.0:
        return scaled()
    enum, local = resolve_weights(name, weights)
    net = torchvision_model(name, enum)
    if local is not None:
        load_local_weights(net, local)
    return net


def load_local_weights(module: nn.Module, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    missing, unexpected = module.load_state_dict(state, strict=False)
    real_missing = [k for k in missing if not k.startswith(("fc.", "classifier."))]
    if real_missing:
        raise ValueError(f"{path}: backbone weights lack {len(real_missing)} keys, e.g. {real_missing[:3]}")


def require_full_width(width: float, name: str) -> None:
    if width != 1.0:
        raise ValueError(f"model.backbone.width must be 1.0 for {name} (its definition has no width multiplier)")


def refuse_scaled_weights(width: float, weights: str | None) -> None:
    if width != 1.0 and weights is not None:
        raise ValueError(f"model.backbone.weights needs model.backbone.width 1.0, got {width}: "
                         "weights exist for the full width, see configs/faster_rcnn/custom_pretrained.yaml")


def apply_norm_choice(module: nn.Module, norm: str, name: str) -> nn.Module:
    """For torchvision definitions that take no ``norm_layer``: "bn" keeps their BatchNorm, "frozen_bn"
    freezes it in place; GroupNorm would need a different definition."""
    norm_layer_factory(norm)  # an unknown name: the one message every backbone gives
    if norm == "gn":
        raise ValueError(f"model.backbone.norm 'gn' is not available for {name} (torchvision's definition "
                         "takes no norm layer); use bn or frozen_bn")
    return freeze_batch_norm(module) if norm == "frozen_bn" else module

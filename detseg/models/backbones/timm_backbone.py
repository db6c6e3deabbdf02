"""Any timm network as a backbone: ``model.backbone.name: timm/<model_name>``.

``timm.create_model(<model_name>, features_only=True)`` with timm's default ``out_indices`` (every stage
of a CNN, the last blocks of a ViT); each map is keyed by its stride from ``feature_info.reduction()``
and described by ``feature_info.channels()``; where several share a stride (a ViT's blocks) the deepest
is kept. ``model.backbone.weights``: None (random init), a local file (a state dict of timm's
full model, loaded by timm's own pretrained mechanism, so no network), or a pretrained tag ("DEFAULT":
the model's default tag, or e.g. "ra2_in1k"), which timm downloads from the Hugging Face hub; without a
network that fails in one line naming what to download. ``freeze_at`` k freezes the parameters up to
timm's feature k - 1 (feature 0 is usually the stride-2 stem, as ResNet's ``freeze_at`` 1). timm is an
optional dependency (``pip install detseg[timm]``). NASNet-A and PNASNet-5 come only this way
(``timm/nasnetalarge``, ``timm/pnasnet5large``).
"""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from detseg.models.backbones.base import Backbone, WeightsDownloadError, require_full_width
from detseg.models.layers.features import FeatureSpec, stride_key


class TimmBackbone(Backbone):
    def __init__(self, model_name: str, weights=None, norm="bn", freeze_at=0, width=1.0):
        super().__init__()
        timm = _import_timm(model_name)
        require_full_width(width, f"timm/{model_name}")
        if norm not in ("bn", "frozen_bn"):
            raise ValueError(f"model.backbone.norm '{norm}' is not available for timm/{model_name}: "
                             "its own norm layers are used (bn, or frozen_bn to freeze them)")
        self.body = _create(timm, model_name, weights)
        if norm == "frozen_bn":
            self.body = timm.layers.freeze_batch_norm_2d(self.body)
        info = self.body.feature_info
        deepest = {stride: i for i, stride in enumerate(info.reduction())}  # later indices overwrite
        self._outputs = {i: stride_key(s) for s, i in sorted(deepest.items())}
        self._spec = {key: FeatureSpec(info.channels()[i], info.reduction()[i]) for i, key in self._outputs.items()}
        _freeze_through(self.body, [entry["module"] for entry in info.info][:freeze_at])  # all features

    def output_spec(self) -> dict[str, FeatureSpec]:
        return dict(self._spec)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        maps = self.body(images)
        if str(getattr(self.body, "output_fmt", "NCHW")).endswith("NHWC"):  # Swin's stages are channels-last
            maps = [m.permute(0, 3, 1, 2) for m in maps]
        return {key: maps[i] for i, key in self._outputs.items()}


def _import_timm(model_name: str):
    try:
        import timm
    except ImportError:
        raise ValueError(f"model.backbone.name 'timm/{model_name}' needs timm: pip install 'detseg[timm]'") from None
    if not timm.is_model(model_name):
        import difflib

        close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join('timm/' + c for c in close)}?" if close else ""
        raise ValueError(f"model.backbone.name 'timm/{model_name}' names no timm model{hint}")
    return timm


def _create(timm, model_name: str, weights: str | None) -> nn.Module:
    if weights is None:
        return _features_only(timm, model_name, pretrained=False)
    if Path(weights).is_file():  # timm maps the full model's state dict onto the feature extractor
        return _features_only(timm, model_name, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)))
    tagged = model_name if weights == "DEFAULT" else f"{model_name}.{weights}"
    try:
        return _features_only(timm, tagged, pretrained=True)
    except RuntimeError as exc:  # "Invalid pretrained tag"
        tags = [name.split(".", 1)[1] for name in timm.list_pretrained(f"{model_name}.*")]
        raise ValueError(f"model.backbone.weights '{weights}' is neither a file nor a timm pretrained tag of "
                         f"{model_name} (DEFAULT, {', '.join(tags) or 'none'}): {exc}") from None
    except OSError as exc:  # no network: the hub's LocalEntryNotFoundError, urllib's URLError
        raise WeightsDownloadError(_download_message(timm, tagged, exc)) from None


def _features_only(timm, name: str, **kwargs) -> nn.Module:
    """The feature extractor; a vision transformer is asked for ``dynamic_img_size`` so that it reads any
    input size as the other heads' images come (its position embedding resampled), not only its 224 px.
    Only transformers take that argument: a CNN's constructor refuses it, and is then built without."""
    try:
        return timm.create_model(name, features_only=True, dynamic_img_size=True, **kwargs)
    except TypeError as exc:
        if "dynamic_img_size" not in str(exc):
            raise
    return timm.create_model(name, features_only=True, **kwargs)


def _download_message(timm, tagged: str, exc: Exception) -> str:
    cfg = timm.models.get_pretrained_cfg(tagged)
    source = f"https://huggingface.co/{cfg.hf_hub_id}" if cfg.hf_hub_id else cfg.url
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (f"cannot download the timm weights {cfg.architecture}.{cfg.tag} from {source} ({reason}); "
            f"without a network, fetch its model.safetensors (or .pth) elsewhere and set "
            f"model.backbone.weights to that file")


def _freeze_through(body: nn.Module, module_names: list[str]) -> None:
    """Freeze every module registered up to the last named one, with its submodules (timm registers a
    CNN's modules in the order they run). Feature extractors flatten "stages.0" into "stages_0" or wrap
    the network as "model."; the stem's feature (ResNet's act1) may hold no parameters itself."""
    if not module_names:
        return
    target = module_names[-1]
    names = [name for name, _ in body.named_modules()]
    found = [i for i, name in enumerate(names) if name in (target, target.replace(".", "_"))
             or name.endswith("." + target)]
    if not found:
        raise ValueError(f"model.backbone.freeze_at: timm's feature module '{target}' is not in the network")
    end = found[-1] + 1
    while end < len(names) and names[end].startswith(names[found[-1]] + "."):  # its submodules follow it
        end += 1
    modules = dict(body.named_modules())
    for name in names[:end]:
        for param in modules[name].parameters(recurse=False):
            param.requires_grad_(False)

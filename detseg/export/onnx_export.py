"""ONNX export of a trained model (detseg.export.graphs) and its check against PyTorch with onnxruntime.

torch.onnx's TorchScript-based exporter (``dynamo=False``) is used: torchvision's nms and roi_align
have ONNX symbolics there, and the graphs are written for its tracer.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from detseg.export.graphs import FIXED_SIZE_ONLY, SEMANTIC_ARCHS, export_graph, output_names
from detseg.export.onnx_runtime import META_PREFIX, open_session, run_graph, to_instances
from detseg.structures import Batch

DEFAULT_OPSET = 17
# max abs difference allowed between onnxruntime and PyTorch, per output; "masks" is 1 - IoU of the
# pasted masks, "labels" and "label_map" the share of entries that differ
TOLERANCES = {"boxes": 1e-2, "scores": 1e-4, "labels": 0.0, "masks": 1e-2, "logits": 1e-3, "label_map": 1e-3}


class ExportMismatch(ValueError):
    """onnxruntime's outputs differ from PyTorch's beyond the tolerances."""


def export_onnx(model: torch.nn.Module, arch: str, path: str | Path, input_hw: tuple[int, int], dynamic: bool,
                metadata: dict, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` (eval mode) as an ONNX graph of one uint8 image [1, 3, H, W] named "image";
    ``dynamic`` lets H and W vary. ``metadata`` is stored as JSON values under "detseg.<key>"."""
    if dynamic and arch in FIXED_SIZE_ONLY:
        raise ValueError(f"model.arch '{arch}' lays its default boxes / grid over one input size: "
                         "export it without --dynamic (at data.fixed_size or --input-size)")
    example = torch.from_numpy(check_images(input_hw, 1)[0].transpose(2, 0, 1).copy())[None]
    path = Path(path)
    try:
        _trace(export_graph(model.eval(), arch, dynamic), example, path, output_names(arch), dynamic, opset)
    except torch.onnx.errors.SymbolicValueError as exc:
        if "adaptive_avg_pool2d" in str(exc):
            raise ValueError(f"at {input_hw[0]}x{input_hw[1]} YOLO's pooling to model.yolo.grid_size has no "
                             "static input that is a multiple of the grid (ONNX has no adaptive pooling): pick "
                             "an input size (--input-size, data.fixed_size) divisible by model.size_divisibility "
                             "whose feature map is a multiple of the grid") from exc
        raise
    _write_metadata(path, {**metadata, "arch": arch, "input_size": None if dynamic else list(input_hw)})
    return path


def _trace(graph: torch.nn.Module, example: torch.Tensor, path: Path, names: list[str], dynamic: bool,
           opset: int) -> None:
    axes = {name: {0: "detections"} for name in names if name != "logits"}
    if dynamic:
        axes.update({name: {2: "height", 3: "width"} for name in ("image", "logits") if name in ["image", *names]})
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about Python values it freezes; the graphs keep size-dependent ones as tensors
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter itself
        warnings.simplefilter("ignore", FutureWarning)  # torchvision ops script themselves on import
        warnings.filterwarnings("ignore", message="Constant folding")  # a slice with a step stays unfolded
        warnings.filterwarnings("ignore", message="Exporting aten::index")  # the graphs index with no negatives
        torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=opset, input_names=["image"],
                          output_names=names, dynamic_axes=axes)


def _write_metadata(path: Path, metadata: dict) -> None:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: pip install -e '.[export]'") from exc

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {META_PREFIX + k: json.dumps(v) for k, v in metadata.items()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def check_images(input_hw: tuple[int, int], count: int, seed: int = 0) -> list[np.ndarray]:
    """Synthetic shapes pictures (detseg.data.datasets.shapes) resized to ``input_hw``: RGB uint8 HWC."""
    from detseg.data.datasets.shapes import render_image

    rng = np.random.default_rng(seed)
    h, w = input_hw
    return [cv2.resize(render_image(rng, 160, 320)[0], (w, h), interpolation=cv2.INTER_AREA) for _ in range(count)]


@torch.no_grad()
def compare(model: torch.nn.Module, arch: str, onnx_path: str | Path, images: list[np.ndarray],
            mask_threshold: float = 0.5) -> list[dict[str, float]]:
    """Run PyTorch (``model(batch, mode="predict")``) and onnxruntime on each image (RGB uint8 HWC, at the
    network's input size, so no resize); per image the max abs difference of each output."""
    session = open_session(onnx_path)
    model.eval()
    compare_outputs = OUTPUT_CHECKS.get(arch, _check_detection_outputs)
    results = []
    for image in images:
        chw = np.ascontiguousarray(image.transpose(2, 0, 1))
        hw = tuple(image.shape[:2])
        batch = Batch(images=torch.from_numpy(chw)[None], image_sizes=[hw], orig_sizes=[hw], image_ids=[0])
        results.append(compare_outputs(model, batch, run_graph(session, chw), mask_threshold))
    return results


def _check_detection_outputs(model, batch: Batch, outputs: dict, mask_threshold: float) -> dict[str, float]:
    hw = batch.image_sizes[0]
    reference = model(batch, mode="predict")[0]
    return _compare_detections(reference, to_instances(outputs, hw, hw, mask_threshold))


def _check_semantic_outputs(model, batch: Batch, outputs: dict, mask_threshold: float) -> dict[str, float]:
    return _compare_semantic(model, batch, outputs["logits"])


# model.arch -> how its outputs are compared; every other exportable arch returns detections
OUTPUT_CHECKS = {arch: _check_semantic_outputs for arch in SEMANTIC_ARCHS}


def _compare_detections(reference, exported) -> dict[str, float]:
    if len(reference) != len(exported):
        raise ExportMismatch(f"onnxruntime gives {len(exported)} detections, PyTorch {len(reference)}")
    diff = {"detections": float(len(reference))}
    if len(reference) == 0:
        return diff
    exported = exported[_pair_detections(reference, exported)]
    diff["boxes"] = (reference.boxes - exported.boxes).abs().max().item()
    diff["scores"] = (reference.scores - exported.scores).abs().max().item()
    diff["labels"] = (reference.labels != exported.labels).float().mean().item()
    if reference.masks is not None:
        inter = (reference.masks & exported.masks).sum().item()
        union = (reference.masks | exported.masks).sum().item()
        diff["masks"] = 1.0 - inter / union if union else 0.0
    return diff


def _pair_detections(reference, exported) -> torch.Tensor:
    """Index of the exported detection paired with each reference one: same label, nearest box among
    those with a score within tolerance. Detections whose scores tie to float rounding may come out of
    the two runtimes' sorts in either order; pairing keeps such swaps from reading as box errors."""
    order, used = [], torch.zeros(len(exported), dtype=torch.bool)
    box_gap = torch.cdist(reference.boxes.float(), exported.boxes.float(), p=float("inf"))
    close = (reference.scores[:, None] - exported.scores[None, :]).abs() <= TOLERANCES["scores"]
    close &= reference.labels[:, None] == exported.labels[None, :]
    for i in range(len(reference)):
        candidates = torch.where(close[i] & ~used)[0]
        j = int(candidates[box_gap[i, candidates].argmin()]) if len(candidates) else int((~used).nonzero()[0])
        used[j] = True
        order.append(j)
    return torch.tensor(order, dtype=torch.long)


def _compare_semantic(model, batch: Batch, logits: np.ndarray) -> dict[str, float]:
    h, w = batch.image_sizes[0]
    features, padded_hw = model._features(batch)
    reference = model.head(features, padded_hw)[..., :h, :w]
    exported = torch.from_numpy(logits)
    label_map = model(batch, mode="predict")[0]
    return {"logits": (reference - exported).abs().max().item(),
            "label_map": (label_map != exported[0].argmax(0)).float().mean().item()}


def check_tolerances(results: list[dict[str, float]], tolerances: dict[str, float] = TOLERANCES) -> None:
    """Raise ExportMismatch naming every output whose difference is above its tolerance."""
    worst = {key: max(r[key] for r in results if key in r) for key in tolerances if any(key in r for r in results)}
    over = {key: value for key, value in worst.items() if value > tolerances[key]}
    if over:
        raise ExportMismatch("onnxruntime differs from PyTorch: " + ", ".join(
            f"{key} {value:.3g} > {tolerances[key]:.3g}" for key, value in over.items()))

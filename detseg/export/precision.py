"""Reduced-precision copies of an exported fp32 graph, for onnxruntime's CPU provider.

- fp16: onnxruntime's own float16 conversion (``onnxruntime.transformers.float16``, the converter of
  onnxconverter-common shipped with onnxruntime), inputs and outputs kept as they are;
- int8: dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``): int8 weights, activations
  quantised per call, no calibration data.

A copy is written beside the fp32 file (``model.onnx`` -> ``model.int8.onnx``) with its detseg metadata,
and opened once: a graph onnxruntime cannot load raises ``PrecisionUnsupported`` (one line) and is removed.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from detseg.export.onnx_runtime import open_session

PRECISIONS = ("fp32", "fp16", "int8")


class PrecisionUnsupported(ValueError):
    """The graph cannot be converted to, or run in, the asked precision."""


def precision_path(fp32_path: str | Path, precision: str) -> Path:
    fp32_path = Path(fp32_path)
    return fp32_path if precision == "fp32" else fp32_path.with_suffix(f".{precision}.onnx")


def convert(fp32_path: str | Path, precision: str) -> Path:
    """Write ``fp32_path`` in ``precision`` beside it and return the new file (fp32: the file itself)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    target = precision_path(fp32_path, precision)
    if precision == "fp32":
        return target
    try:
        _CONVERTERS[precision](Path(fp32_path), target)
        _copy_metadata(Path(fp32_path), target)
        open_session(target)
    except Exception as exc:  # the converters and onnxruntime raise many types, none of them ours
        target.unlink(missing_ok=True)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PrecisionUnsupported(f"{precision}: onnxruntime's CPU provider cannot run this graph in "
                                   f"{precision} ({reason[:200]})") from exc
    return target


def _to_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns per value that float16 truncates
        model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


def _to_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs a warning per integer tensor it leaves alone
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


_CONVERTERS = {"fp16": _to_fp16, "int8": _to_int8}


def _copy_metadata(source: Path, target: Path) -> None:
    """The detseg.* metadata the predictor reads (the converters do not all keep it)."""
    import onnx

    model = onnx.load(str(target))
    kept = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    onnx.helper.set_model_props(model, kept)
    onnx.save(model, str(target))

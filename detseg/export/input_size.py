"""Which input an export takes: any height and width (dynamic) or one size, and the example to trace.

The graph fits the config's test resize unless told otherwise: ``data.fixed_size`` resizes every image to
one size, so the export is fixed at it; the shortest-edge resize (``data.min_size_test`` /
``max_size_test``) gives images of varying width or height, so the export is dynamic. ``--fixed`` or
``--input-size H W`` ask for one size, ``--dynamic`` for any. SSD and YOLO lay their default boxes / grid
over one input size, so they export fixed only.
"""
from __future__ import annotations

from dataclasses import dataclass

from detseg.config import Config
from detseg.export.graphs import FIXED_SIZE_ONLY


@dataclass(frozen=True)
class ExportInput:
    dynamic: bool
    hw: tuple[int, int]  # the fixed size, or the example a dynamic graph is traced at
    note: str = ""  # what the user should know about this choice, "" when nothing


def export_input(cfg: Config, want_dynamic: bool = False, want_fixed: bool = False,
                 input_size: tuple[int, int] | None = None) -> ExportInput:
    """The input of ``cfg``'s export (flags: ``--dynamic``, ``--fixed``, ``--input-size``)."""
    if want_dynamic and want_fixed:
        raise ValueError("--dynamic and --fixed exclude each other")
    arch, fixed_size = cfg.model.arch, cfg.data.fixed_size
    hw = tuple(input_size or fixed_size or (cfg.data.min_size_test,) * 2)
    if want_dynamic:
        return ExportInput(True, hw)
    if want_fixed or input_size or fixed_size is not None:
        return ExportInput(False, hw, _fixed_note(cfg, hw))
    if arch in FIXED_SIZE_ONLY:
        return ExportInput(False, hw, f"model.arch '{arch}' exports at one size only ({hw[0]}x{hw[1]}): set "
                                      "data.fixed_size to it so that inference resizes every image to it")
    return ExportInput(True, hw)


def _fixed_note(cfg: Config, hw: tuple[int, int]) -> str:
    """A fixed graph under a shortest-edge resize serves only the images that resize to its size."""
    if cfg.data.fixed_size is not None and tuple(cfg.data.fixed_size) == hw:
        return ""
    return (f"the graph takes only {hw[0]}x{hw[1]} inputs, but the config resizes images to other sizes "
            "(data.fixed_size is not that size): the onnxruntime predictor will refuse those")

"""Fail the install early, with the fix spelled out, when a compiled dependency is unusable: OpenCV's
contrib build (selective search) and torchvision's compiled ops (NMS, RoIAlign)."""
from __future__ import annotations

import sys

from detseg.cli import common


def problems() -> list[str]:
    found = []
    try:
        import cv2

        if not hasattr(cv2, "ximgproc"):
            found.append(
                "cv2 has no ximgproc (selective search): opencv-python-headless overwrote the contrib build. "
                "Fix: pip install --force-reinstall --no-deps opencv-contrib-python-headless"
            )
    except ImportError as exc:
        found.append(f"OpenCV does not import: {exc}")
    try:
        import torch
        import torchvision.ops

        torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
    except Exception as exc:  # a CPU-only torch wheel cannot load torchvision's compiled ops
        found.append(f"torchvision's compiled ops do not load ({exc}); install matching torch/torchvision builds")
    return found


def main(argv: list[str] | None = None) -> int:
    common.parser(__doc__).parse_args(argv)
    found = problems()
    for problem in found:
        print(f"check_install: {problem}", file=sys.stderr)
    if not found:
        print("check_install: torch, torchvision ops and cv2.ximgproc are usable")
    return 1 if found else 0


def run(argv: list[str] | None = None) -> None:
    sys.exit(main(argv))

"""Fail the install early, with the fix spelled out, when a compiled dependency is unusable."""
import sys


def main() -> int:
    problems = []
    try:
        import cv2

        if not hasattr(cv2, "ximgproc"):
            problems.append(
                "cv2 has no ximgproc (selective search): opencv-python-headless overwrote the contrib build. "
                "Fix: pip install --force-reinstall --no-deps opencv-contrib-python-headless"
            )
    except ImportError as exc:
        problems.append(f"OpenCV does not import: {exc}")
    try:
        import torch
        import torchvision.ops

        torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
    except Exception as exc:  # a CPU-only torch wheel cannot load torchvision's compiled ops
        problems.append(f"torchvision's compiled ops do not load ({exc}); install matching torch/torchvision builds")
    for problem in problems:
        print(f"check_install: {problem}", file=sys.stderr)
    if not problems:
        print("check_install: torch, torchvision ops and cv2.ximgproc are usable")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""detseg: object detection and segmentation on one PyTorch codebase."""
__version__ = "0.1.0"

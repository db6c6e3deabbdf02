"""Faster R-CNN exported to ONNX gives PyTorch's detections under onnxruntime, fixed and dynamic size."""
import pytest
from export_helpers import TWO_STAGE_TINY, assert_detections_match, export_and_compare, input_dims, shapes_pictures, tiny_model

from detseg.export.onnx_export import ExportMismatch, check_tolerances


def test_dynamic_export_matches_pytorch_on_several_sizes(tmp_path, shapes_paths):
    _, model = tiny_model("configs/faster_rcnn/shapes.yaml", TWO_STAGE_TINY)
    images = shapes_pictures(shapes_paths, [(128, 160), (160, 128), (96, 200)])
    path, results = export_and_compare(tmp_path, "faster_rcnn", model, (128, 160), True, images)
    assert input_dims(path) == [1, 3, "height", "width"]
    assert_detections_match(results)


def test_fixed_export_matches_pytorch(tmp_path, shapes_paths):
    # few proposals: the top-k cuts (per level before NMS, after NMS) are all exercised
    overrides = [*TWO_STAGE_TINY, "model.rpn.pre_nms_topk_test=40", "model.rpn.post_nms_topk_test=30",
                 "model.roi.detections_per_image=20"]
    _, model = tiny_model("configs/faster_rcnn/shapes.yaml", overrides, seed=1)
    images = shapes_pictures(shapes_paths, [(128, 128), (128, 128)])
    path, results = export_and_compare(tmp_path, "faster_rcnn", model, (128, 128), False, images)
    assert input_dims(path) == [1, 3, 128, 128]
    assert_detections_match(results)
    assert {r["detections"] for r in results} == {20.0}


def test_tolerance_check_names_the_output_above_it():
    check_tolerances([{"boxes": 1e-4, "scores": 1e-6}])
    with pytest.raises(ExportMismatch, match="scores 0.01 > 0.0001"):
        check_tolerances([{"boxes": 1e-4, "scores": 1e-6}, {"boxes": 1e-4, "scores": 0.01}])

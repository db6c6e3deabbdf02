"""SSD and SSDlite exported to ONNX (fixed input size) give PyTorch's detections under onnxruntime."""
import pytest
from export_helpers import assert_detections_match, calibrate_batchnorm, export_and_compare, input_dims, shapes_pictures, tiny_model

SSD_TINY = ["model.backbone.width=0.25", "model.neck.extra_channels=[32]", "data.fixed_size=[128,128]",
            "model.ssd.detections_per_image=50"]


def test_ssd_export_matches_pytorch(tmp_path, shapes_paths):
    _, model = tiny_model("configs/ssd/shapes.yaml", SSD_TINY)
    images = shapes_pictures(shapes_paths, [(128, 128), (128, 128)])
    path, results = export_and_compare(tmp_path, "ssd", model, (128, 128), False, images)
    assert input_dims(path) == [1, 3, 128, 128]
    assert_detections_match(results)


def test_ssdlite_export_matches_pytorch(tmp_path, shapes_paths):
    overrides = ["model.backbone.width=0.25", "model.backbone.weights=null", "data.fixed_size=[160,160]"]
    _, model = tiny_model("configs/ssd/coco_ssdlite320_mobilenet_v3.yaml", overrides)
    images = shapes_pictures(shapes_paths, [(160, 160), (160, 160)])
    calibrate_batchnorm(model, images)
    _, results = export_and_compare(tmp_path, "ssd", model, (160, 160), False, images)
    assert_detections_match(results)


def test_dynamic_export_is_refused_with_the_reason(tmp_path):
    _, model = tiny_model("configs/ssd/shapes.yaml", SSD_TINY)
    with pytest.raises(ValueError, match="without --dynamic"):
        export_and_compare(tmp_path, "ssd", model, (128, 128), True, [])

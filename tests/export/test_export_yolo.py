"""YOLO v1 exported to ONNX (fixed input size) gives PyTorch's detections under onnxruntime."""
import pytest
from export_helpers import assert_detections_match, export_and_compare, shapes_pictures, tiny_model

YOLO_TINY = ["model.backbone.width=0.25", "model.yolo.conv_dims=[32]", "model.yolo.grid_size=8",
             "data.fixed_size=[128,128]"]


@pytest.mark.parametrize("fc_dim", [None, 64], ids=["conv_predictor", "fc_predictor"])
def test_yolo_export_matches_pytorch(tmp_path, shapes_paths, fc_dim):
    _, model = tiny_model("configs/yolo/shapes.yaml", [*YOLO_TINY, f"model.yolo.fc_dim={fc_dim or 'null'}"])
    images = shapes_pictures(shapes_paths, [(128, 128), (128, 128)])
    _, results = export_and_compare(tmp_path, "yolo", model, (128, 128), False, images)
    assert_detections_match(results)


def test_grid_that_does_not_divide_the_map_gives_a_clear_error(tmp_path):
    _, model = tiny_model("configs/yolo/shapes.yaml", [*YOLO_TINY, "model.yolo.grid_size=7"])
    with pytest.raises(ValueError, match="multiple of the grid"):
        export_and_compare(tmp_path, "yolo", model, (128, 128), False, [])

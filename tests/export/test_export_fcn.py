"""FCN exported to ONNX gives PyTorch's logits and label maps under onnxruntime, at any input size."""
import pytest
from export_helpers import LOGIT_ATOL, export_and_compare, input_dims, shapes_pictures, tiny_model


@pytest.mark.parametrize("config", ["configs/fcn/shapes_8s.yaml", "configs/fcn/shapes_32s.yaml"])
def test_dynamic_export_matches_pytorch(tmp_path, shapes_paths, config):
    _, model = tiny_model(config, ["model.backbone.width=0.25"])
    images = shapes_pictures(shapes_paths, [(128, 160), (96, 200), (130, 90)])  # the last: padded to /32
    path, results = export_and_compare(tmp_path, "fcn", model, (128, 160), True, images)
    assert input_dims(path) == [1, 3, "height", "width"]
    for result in results:
        assert result["logits"] <= LOGIT_ATOL and result["label_map"] <= 1e-3, result  # share of pixels


def test_torchvision_head_exports(tmp_path, shapes_paths):
    overrides = ["model.fcn.variant=torchvision", "model.fcn.in_features=[s32]", "model.fcn.aux_loss=false",
                 "model.backbone.width=0.25"]
    _, model = tiny_model("configs/fcn/shapes_8s.yaml", overrides)
    images = shapes_pictures(shapes_paths, [(128, 128), (160, 96)])
    _, results = export_and_compare(tmp_path, "fcn", model, (128, 128), True, images)
    for result in results:
        assert result["logits"] <= LOGIT_ATOL and result["label_map"] <= 1e-3, result  # share of pixels

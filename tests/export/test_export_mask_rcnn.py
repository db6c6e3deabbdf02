"""Mask R-CNN exported to ONNX gives PyTorch's boxes and pasted masks under onnxruntime."""
import numpy as np
from export_helpers import TWO_STAGE_TINY, assert_detections_match, export_and_compare, shapes_pictures, tiny_model

from detseg.export.onnx_runtime import open_session, run_graph, to_instances

MASK_TINY = [*TWO_STAGE_TINY, "model.mask.conv_dims=[32]", "model.roi.detections_per_image=30"]


def test_dynamic_export_matches_pytorch_masks(tmp_path, shapes_paths):
    _, model = tiny_model("configs/mask_rcnn/shapes.yaml", MASK_TINY)
    images = shapes_pictures(shapes_paths, [(128, 160), (144, 112)])
    path, results = export_and_compare(tmp_path, "mask_rcnn", model, (128, 160), True, images)
    assert_detections_match(results, masks=True)
    # the graph's own mask output: one M x M probability map per detection, pasted outside the graph
    outputs = run_graph(open_session(path), np.ascontiguousarray(images[1].transpose(2, 0, 1)))
    size = model.roi_heads.mask_size
    assert outputs["mask_probs"].shape == (len(outputs["boxes"]), size, size)
    assert outputs["labels"].dtype == np.int64 and outputs["boxes"].dtype == np.float32
    masks = to_instances(outputs, (144, 112), (288, 224)).masks  # pasted at twice the size
    assert masks.shape == (30, 288, 224) and masks.sum() > 0  # the IoU above compared masks with pixels


def test_no_detection_gives_empty_outputs(tmp_path, shapes_paths):
    _, model = tiny_model("configs/mask_rcnn/shapes.yaml", MASK_TINY)
    model.roi_heads.score_thresh = 0.9  # random weights score about 1 / 7: nothing survives
    images = shapes_pictures(shapes_paths, [(128, 160), (96, 96)])
    path, results = export_and_compare(tmp_path, "mask_rcnn", model, (128, 160), True, images)
    assert results == [{"detections": 0.0}, {"detections": 0.0}]
    outputs = run_graph(open_session(path), np.ascontiguousarray(images[0].transpose(2, 0, 1)))
    assert outputs["boxes"].shape == (0, 4) and outputs["mask_probs"].shape == (0, 14, 14)

"""Export of trained models: ONNX graphs (graphs.py), the exporter and its check (onnx_export.py), and
the onnxruntime predictor (onnx_runtime.py)."""

"""Export of trained models: ONNX graphs (graphs.py), the input they take (input_size.py), the exporter
and its check (onnx_export.py), reduced-precision copies (precision.py), the judgement in AP on the val
split (val_check.py), and the onnxruntime predictor (onnx_runtime.py)."""

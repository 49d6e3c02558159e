"""Export: ONNX (+ model.json contract), INT8 QDQ, TensorRT engine builder."""

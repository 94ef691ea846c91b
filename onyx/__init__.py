"""onyx: the ONNX standard in Python."""

"""Export: TFLite→ONNX conversion, quantisation, parity, TensorRT engines, signed bundles."""

"""The project's TFLite → ONNX converter for the MediaPipe perception models.

Reads the flatbuffer with the `tflite` package and builds the graph with `onnx.helper`; see
`ops.CONVERTERS` for the op kinds it translates and `ops.FOLDERS` for those folded into constants.
"""

from export.tflite_onnx.converter import OPSET, convert_graph, convert_tflite, supported_ops
from export.tflite_onnx.errors import ConversionError

__all__ = ["OPSET", "ConversionError", "convert_graph", "convert_tflite", "supported_ops"]

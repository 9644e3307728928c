"""Accumulates ONNX nodes and initializers; tracks the layout of every runtime tensor.

TFLite is NHWC. The body of the converted graph is NCHW (the layout ONNX Runtime's convolution
kernels are fastest with), so every 4-D activation carries a layout tag: "nchw" once an op has
produced it channel-first, "native" when it is laid out as in the TFLite model. A Transpose is
inserted only where a consumer needs the other layout, and is made once per tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Layout = Literal["nchw", "native"]

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)

_ONNX_TYPES = {
    np.dtype("float32"): TensorProto.FLOAT,
    np.dtype("float16"): TensorProto.FLOAT16,
    np.dtype("int32"): TensorProto.INT32,
    np.dtype("int64"): TensorProto.INT64,
    np.dtype("uint8"): TensorProto.UINT8,
    np.dtype("int8"): TensorProto.INT8,
    np.dtype("bool"): TensorProto.BOOL,
}


def onnx_type(dtype: np.dtype[Any]) -> int:
    return _ONNX_TYPES[np.dtype(dtype)]


@dataclass
class RuntimeValue:
    """A tensor computed at run time: its ONNX name per layout (the other layout made on demand)."""

    shape: tuple[int, ...]  # as in the TFLite model (NHWC for 4-D)
    names: dict[str, str]  # layout -> ONNX name
    # Zero padding (top, left, bottom, right) not yet applied: only convolutions read such a value,
    # and they add it to their own pads (see ops.pad).
    pending_pads: tuple[int, int, int, int] | None = None
    # A bilinear resize not yet applied (its ONNX coordinate_transformation_mode): its only reader is a
    # 1x1 convolution, which runs before it instead (see ops.resize_bilinear).
    pending_resize: str | None = None


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._used: set[str] = set()
        self._counter = 0

    def fresh(self, hint: str) -> str:
        """A new unique ONNX value name that reads like `hint`."""
        while True:
            self._counter += 1
            name = f"{hint}:{self._counter}"
            if name not in self._used:
                self._used.add(name)
                return name

    def reserve(self, name: str) -> None:
        self._used.add(name)

    def constant(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def int64s(self, values: Any, hint: str) -> str:
        return self.constant(np.asarray(values, dtype=np.int64), hint)

    def node(self, op_type: str, inputs: list[str], hint: str, output: str | None = None, **attrs: Any) -> str:
        out = output if output is not None else self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}:{out}", **attrs))
        return out

    def layout_of(self, value: RuntimeValue, want: Layout) -> str:
        """Name of `value` in layout `want`, adding the Transpose the first time it is needed."""
        if value.pending_pads is not None or value.pending_resize is not None:
            raise ValueError("a value with a pending pad or resize can only be read by a convolution")
        if want in value.names:
            return value.names[want]
        if len(value.shape) != 4:
            # Only 4-D tensors have two layouts; any other rank is always native.
            return value.names["native"]
        if want == "nchw":
            name = self.node("Transpose", [value.names["native"]], "to_nchw", perm=list(NHWC_TO_NCHW))
        else:
            name = self.node("Transpose", [value.names["nchw"]], "to_nhwc", perm=list(NCHW_TO_NHWC))
        value.names[want] = name
        return name

"""What an op converter sees: its TFLite op, its inputs as constants or runtime values, and the builder."""

from __future__ import annotations

from typing import Any

import numpy as np
import tflite

from export.tflite_onnx.builder import NHWC_TO_NCHW, GraphBuilder, Layout, RuntimeValue
from export.tflite_onnx.errors import ConversionError
from export.tflite_onnx.reader import OpInfo, TensorInfo, TfliteGraph


class OpContext:
    def __init__(
        self,
        graph: TfliteGraph,
        op: OpInfo,
        builder: GraphBuilder,
        constants: dict[int, np.ndarray],
        values: dict[int, RuntimeValue],
        *,
        consumers: dict[int, list[OpInfo]] | None = None,
        widened: dict[int, int] | None = None,
    ) -> None:
        self.graph = graph
        self.op = op
        self.builder = builder
        self._constants = constants
        self._values = values
        self._consumers = consumers or {}
        self._widened = widened or {}

    def consumers(self, j: int = 0) -> list[OpInfo]:
        """The ops that read output j."""
        return self._consumers.get(self.op.outputs[j], [])

    def is_graph_output(self, j: int = 0) -> bool:
        return self.op.outputs[j] in self.graph.outputs

    # --- errors -----------------------------------------------------------------------------------
    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.graph.name}: op #{self.op.index} {self.op.kind}: {message}")

    # --- inputs -----------------------------------------------------------------------------------
    def tensor(self, i: int) -> TensorInfo:
        return self.graph.tensors[self.op.inputs[i]]

    def out_tensor(self, j: int = 0) -> TensorInfo:
        return self.graph.tensors[self.op.outputs[j]]

    def has_input(self, i: int) -> bool:
        return i < len(self.op.inputs) and self.op.inputs[i] >= 0

    def is_const(self, i: int) -> bool:
        return self.op.inputs[i] in self._constants

    def const(self, i: int) -> np.ndarray:
        index = self.op.inputs[i]
        if index not in self._constants:
            raise self.error(f"input {i} ({self.tensor(i).name!r}) must be a constant")
        return self._constants[index]

    def value(self, i: int) -> RuntimeValue:
        index = self.op.inputs[i]
        if index not in self._values:
            raise self.error(f"input {i} ({self.tensor(i).name!r}) has not been computed")
        return self._values[index]

    def shape(self, i: int) -> tuple[int, ...]:
        return self.tensor(i).shape

    def channels(self, i: int) -> int:
        """How many channels runtime input i (4-D) really has: its own, or more where it is widened with
        zero channels (see channels.py)."""
        return self._widened.get(self.op.inputs[i], self.shape(i)[-1])

    def out_channels(self, j: int = 0) -> int:
        """How many channels output j (4-D) is to have: its own, or more where it is widened."""
        return self._widened.get(self.op.outputs[j], self.out_tensor(j).shape[-1])

    def nchw(self, i: int) -> str:
        """Runtime input i as a channel-first tensor (it must be 4-D)."""
        if len(self.shape(i)) != 4:
            raise self.error(f"input {i} must be 4-D, has shape {self.shape(i)}")
        if self.value(i).pending_pads is not None:
            raise self.error(f"input {i} carries a folded PAD that this op cannot absorb")
        if self.value(i).pending_resize is not None:
            raise self.error(f"input {i} carries a deferred RESIZE_BILINEAR that this op cannot absorb")
        return self.builder.layout_of(self.value(i), "nchw")

    def nchw_padded(self, i: int) -> tuple[str, tuple[int, int, int, int]]:
        """Runtime input i channel-first, with the zero padding (top, left, bottom, right) still to apply."""
        value = self.value(i)
        if value.pending_pads is not None:
            return value.names["nchw"], value.pending_pads
        return self.nchw(i), (0, 0, 0, 0)

    def set_padded_output(self, name: str, pads: tuple[int, int, int, int]) -> None:
        """Output 0 is `name` (channel-first) zero-padded by `pads`, left for the consuming convolutions."""
        tensor = self.out_tensor()
        self._values[self.op.outputs[0]] = RuntimeValue(shape=tensor.shape, names={"nchw": name}, pending_pads=pads)

    def set_resized_output(self, name: str, mode: str) -> None:
        """Output 0 is `name` (channel-first) resized bilinearly with `mode`, left for the consuming 1x1 convolution."""
        tensor = self.out_tensor()
        self._values[self.op.outputs[0]] = RuntimeValue(shape=tensor.shape, names={"nchw": name}, pending_resize=mode)

    def native(self, i: int) -> str:
        return self.builder.layout_of(self.value(i), "native")

    def runtime_layout(self, i: int) -> Layout:
        """The layout input i is already available in (prefers nchw for 4-D)."""
        names = self.value(i).names
        return "nchw" if "nchw" in names else "native"

    def operand(self, i: int, layout: Layout, rank: int) -> str:
        """Input i of an elementwise op computing in `layout` at rank `rank` (constants broadcast NHWC-wise)."""
        if self.is_const(i):
            array = self.const(i).astype(np.float32) if self.const(i).dtype == np.float16 else self.const(i)
            if layout == "nchw" and rank == 4:
                array = array.reshape((1,) * (4 - array.ndim) + array.shape).transpose(NHWC_TO_NCHW)
            return self.builder.constant(array, "const")
        return self.builder.layout_of(self.value(i), layout) if len(self.shape(i)) == 4 else self.native(i)

    # --- options ----------------------------------------------------------------------------------
    def options(self, cls: Any) -> Any:
        return self.op.options(cls)

    # --- outputs ----------------------------------------------------------------------------------
    def hint(self, j: int = 0) -> str:
        return self.out_tensor(j).name or f"t{self.op.outputs[j]}"

    def set_output(self, name: str, layout: Layout, j: int = 0) -> None:
        tensor = self.out_tensor(j)
        if len(tensor.shape) != 4:
            layout = "native"
        self._values[self.op.outputs[j]] = RuntimeValue(shape=tensor.shape, names={layout: name})

    def activation(self, name: str, fused: int, *, channels: int | None = None) -> str:
        """Apply a TFLite fused activation to `name`.

        `channels` is given for a channel-first tensor that is not a convolution's output: RELU6 then
        avoids Clip (see `_relu6_blocked`). After a convolution Clip is right: ONNX Runtime fuses it in.
        """
        act = tflite.ActivationFunctionType
        b = self.builder
        if fused == act.NONE:
            return name
        if fused == act.RELU:
            return b.node("Relu", [name], self.hint())
        if fused == act.RELU6 and channels is not None:
            return self._relu6_blocked(name, channels)
        if fused == act.RELU6:
            return b.node(
                "Clip",
                [name, b.constant(np.array(0, np.float32), "zero"), b.constant(np.array(6, np.float32), "six")],
                "relu6",
            )
        if fused == act.RELU_N1_TO_1:
            return b.node(
                "Clip",
                [name, b.constant(np.array(-1, np.float32), "minus_one"), b.constant(np.array(1, np.float32), "one")],
                "relu_n1",
            )
        if fused == act.TANH:
            return b.node("Tanh", [name], self.hint())
        raise self.error(f"fused activation {fused} is not supported")

    def _relu6_blocked(self, name: str, channels: int) -> str:
        """min(max(x, 0), 6) as a - Relu(a - 6) with a = Relu(x), the affine steps as 1x1 depthwise convolutions.

        ONNX Runtime's blocked channel layout (NCHWc) has no Clip: a Clip after an Add costs two layout
        reorders and forces the next ops out of the fast layout. Relu and Conv stay in it, and Runtime
        fuses the Relu into the first convolution and the subtraction (an Add) into the second.
        Exact for a <= 12 (Sterbenz); above, within one ulp of 6.
        """
        b = self.builder
        a = b.node("Relu", [name], "relu6_low")
        ones = np.ones((channels, 1, 1, 1), dtype=np.float32)
        shifted = b.node(
            "Conv",
            [a, b.constant(ones, "relu6_one"), b.constant(np.full(channels, -6.0, np.float32), "relu6_minus6")],
            "relu6_shift",
            group=channels,
            kernel_shape=[1, 1],
        )
        excess = b.node("Relu", [shifted], "relu6_excess")
        negated = b.node(
            "Conv", [excess, b.constant(-ones, "relu6_neg")], "relu6_negated", group=channels, kernel_shape=[1, 1]
        )
        return b.node("Add", [a, negated], self.hint())

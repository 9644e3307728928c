"""TFLite model → ONNX model: NHWC at the graph's edges (names and shapes as in TFLite), NCHW inside."""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper

from export.tflite_onnx.builder import GraphBuilder, RuntimeValue, onnx_type
from export.tflite_onnx.channels import widened_channels
from export.tflite_onnx.context import OpContext
from export.tflite_onnx.errors import ConversionError
from export.tflite_onnx.ops import CONVERTERS, FOLDERS
from export.tflite_onnx.reader import OpInfo, TfliteGraph, read_tflite

log = logging.getLogger(__name__)

OPSET = 17
PRODUCER = "edgescreen-tflite-onnx"


def supported_ops() -> list[str]:
    return sorted([*CONVERTERS, *FOLDERS])


def convert_graph(graph: TfliteGraph) -> onnx.ModelProto:
    builder = GraphBuilder()
    constants: dict[int, np.ndarray] = {}
    values: dict[int, RuntimeValue] = {}
    for tensor in graph.tensors:
        if tensor.data is not None and tensor.sparsity is None:
            constants[tensor.index] = tensor.data
    for name in [graph.tensors[i].name for i in (*graph.inputs, *graph.outputs)]:
        if not name:
            raise ConversionError(f"{graph.name}: a graph input or output tensor has no name")
        builder.reserve(name)

    graph_inputs = []
    for index in graph.inputs:
        tensor = graph.tensors[index]
        if tensor.dtype != np.float32:
            raise ConversionError(f"{graph.name}: input {tensor.name!r} is {tensor.dtype}; only float32 is supported")
        values[index] = RuntimeValue(shape=tensor.shape, names={"native": tensor.name})
        graph_inputs.append(helper.make_tensor_value_info(tensor.name, onnx_type(tensor.dtype), list(tensor.shape)))

    consumers: dict[int, list[OpInfo]] = {}
    for op in graph.ops:
        for index in op.inputs:
            if index >= 0:
                consumers.setdefault(index, []).append(op)
    widened = widened_channels(graph)
    for op in graph.ops:
        ctx = OpContext(graph, op, builder, constants, values, consumers=consumers, widened=widened)
        if op.kind in FOLDERS:
            source = graph.tensors[op.inputs[0]]
            if not (ctx.is_const(0) or (source.sparsity is not None and source.data is not None)):
                raise ctx.error(f"input {source.name!r} is computed at run time; only constant weights are supported")
            constants[op.outputs[0]] = FOLDERS[op.kind](ctx)
            continue
        converter = CONVERTERS.get(op.kind)
        if converter is None:
            raise ctx.error(f"op {op.kind} is not supported by the converter (supported: {', '.join(supported_ops())})")
        for i, tensor_index in enumerate(op.inputs):
            if tensor_index >= 0 and tensor_index not in constants and tensor_index not in values:
                raise ctx.error(f"input {i} ({graph.tensors[tensor_index].name!r}) is neither constant nor computed")
        converter(ctx)
        for j in range(len(op.outputs)):
            if op.outputs[j] not in values:
                raise ctx.error(f"the converter produced no value for output {j}")

    graph_outputs = []
    for index in graph.outputs:
        tensor = graph.tensors[index]
        if index not in values:
            raise ConversionError(f"{graph.name}: output {tensor.name!r} is not computed by any op")
        value = values[index]
        if len(tensor.shape) == 4 and "native" not in value.names:
            builder.node("Transpose", [value.names["nchw"]], tensor.name, output=tensor.name, perm=[0, 2, 3, 1])
        else:
            builder.node("Identity", [value.names["native"]], tensor.name, output=tensor.name)
        graph_outputs.append(helper.make_tensor_value_info(tensor.name, onnx_type(tensor.dtype), list(tensor.shape)))

    onnx_graph = helper.make_graph(
        builder.nodes, graph.name, graph_inputs, graph_outputs, initializer=builder.initializers
    )
    model = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER, ir_version=8
    )
    model.doc_string = f"Converted from the TFLite model {graph.name}"
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"{graph.name}: the converted graph fails onnx.checker: {exc}") from exc
    log.debug("%s: %d TFLite ops -> %d ONNX nodes", graph.name, len(graph.ops), len(builder.nodes))
    return model


def convert_tflite(data: bytes, name: str) -> onnx.ModelProto:
    """Convert the bytes of a .tflite model; `name` names the model in errors and in the ONNX graph."""
    return convert_graph(read_tflite(data, name))

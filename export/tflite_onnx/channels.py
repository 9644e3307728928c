"""Which activations to carry with extra zero channels, so that ONNX Runtime keeps them in its blocked layout.

ONNX Runtime's CPU kernels run convolutions, pooling, Add and Relu in a blocked channel layout (NCHWc,
blocks of 8 or 16 channels), but only on tensors whose channel count suits the block: a MaxPool needs a
multiple of the block (16 with AVX-512), a convolution a multiple of 4. face_detection_short_range's
BlazeBlocks have 28, 42 and 88 channels where they max-pool: each pool costs a reorder to plain NCHW
and back, and the 42-channel convolutions run on the slower plain kernels.

The converter therefore widens such activations to a multiple of `BLOCK` with channels that are zero.
It can where every tensor of a group joined by per-channel ops (depthwise convolution, pooling, Relu,
Add of two such tensors) is written by convolutions or channel PADs (which get zero filters for the new
channels) and read only by such per-channel ops, convolutions or channel PADs (which get zero weights for
them): the extra channels then stay zero and never reach a graph output. Groups that gain nothing (no
pooling, channel counts a multiple of 4) stay as they are: widening them only adds work.
"""

from __future__ import annotations

import numpy as np

from export.tflite_onnx.reader import OpInfo, TfliteGraph

BLOCK = 16  # the widest NCHWc block (AVX-512); a multiple of the narrower ones
_POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")
_UNARY = ("RELU", "RELU6")


def _channels(graph: TfliteGraph, index: int) -> int | None:
    shape = graph.tensors[index].shape
    return shape[3] if len(shape) == 4 else None


def _is_channel_pad(graph: TfliteGraph, op: OpInfo) -> bool:
    """A PAD that appends zero channels only (BlazeBlock shortcuts), which the converter emits as a 1x1 conv."""
    if op.kind != "PAD" or len(graph.tensors[op.inputs[0]].shape) != 4:
        return False
    paddings = graph.tensors[op.inputs[1]].data
    return paddings is not None and not np.asarray(paddings).reshape(-1, 2)[:3].any()


def _per_channel_inputs(graph: TfliteGraph, op: OpInfo) -> list[int] | None:
    """The inputs of `op` whose channels map one to one onto its output's, or None if it is not such an op."""
    if op.kind in _POOLS or op.kind in _UNARY:
        return [op.inputs[0]]
    if op.kind == "DEPTHWISE_CONV_2D":
        weights = graph.tensors[op.inputs[1]].shape
        return [op.inputs[0]] if weights[3] == _channels(graph, op.inputs[0]) else None
    if op.kind == "ADD":
        out = graph.tensors[op.outputs[0]].shape
        runtime = [i for i in op.inputs if graph.tensors[i].data is None]
        if len(runtime) == 2 and all(graph.tensors[i].shape == out for i in runtime):
            return runtime
    return None


def _writes_any_channels(graph: TfliteGraph, op: OpInfo) -> bool:
    """A convolution (one group, several outputs) or channel PAD can give its output zero extra channels."""
    if op.kind == "CONV_2D":
        weights = graph.tensors[op.inputs[1]].shape
        return weights[0] > 1 and weights[3] == _channels(graph, op.inputs[0])
    return _is_channel_pad(graph, op)


def _reads_any_channels(graph: TfliteGraph, op: OpInfo, index: int) -> bool:
    """A convolution or channel PAD that reads `index` as its data input can ignore extra channels."""
    return _writes_any_channels(graph, op) and op.inputs[0] == index and index not in op.inputs[1:]


def widened_channels(graph: TfliteGraph) -> dict[int, int]:
    """Tensor index → channel count to carry it with, for the activations worth widening (see module doc)."""
    producer: dict[int, OpInfo] = {o: op for op in graph.ops for o in op.outputs}
    consumers: dict[int, list[OpInfo]] = {}
    for op in graph.ops:
        for i in op.inputs:
            if i >= 0:
                consumers.setdefault(i, []).append(op)

    # Union-find over tensors joined by per-channel ops.
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for op in graph.ops:
        inputs = _per_channel_inputs(graph, op)
        if inputs is not None:
            for i in inputs:
                parent[find(i)] = find(op.outputs[0])
    groups: dict[int, list[int]] = {}
    for i in list(parent):
        groups.setdefault(find(i), []).append(i)

    ends = set(graph.inputs) | set(graph.outputs)
    widened: dict[int, int] = {}
    for members in groups.values():
        channels = _channels(graph, members[0])
        if channels is None or channels < BLOCK or channels % BLOCK == 0:
            continue
        inside = set(members)
        gains = channels % 4 != 0 or any(
            op.kind in _POOLS for i in members for op in consumers.get(i, []) if op.outputs[0] in inside
        )
        if not gains or inside & ends:
            continue
        written = all(
            (source := producer.get(i)) is not None
            and (_per_channel_inputs(graph, source) is not None or _writes_any_channels(graph, source))
            for i in members
        )
        read = all(
            _reads_any_channels(graph, op, i)
            or (_per_channel_inputs(graph, op) is not None and op.outputs[0] in inside)
            for i in members
            for op in consumers.get(i, [])
        )
        if written and read:
            width = -(-channels // BLOCK) * BLOCK
            widened.update((i, width) for i in members)
    return widened

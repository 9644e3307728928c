"""One converter per TFLite op kind. Each reads its TFLite op through an OpContext and emits ONNX nodes.

4-D activations are computed channel-first (NCHW); weights are transposed once at conversion time.
Ops that only transform constants (DEQUANTIZE of fp16/int8 weights, DENSIFY of sparse weights) are
folded: they become plain fp32 initializers and leave no node in the graph.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import tflite

from export.tflite_onnx.builder import NHWC_TO_NCHW, GraphBuilder, Layout
from export.tflite_onnx.context import OpContext
from export.tflite_onnx.reader import OpInfo
from export.tflite_onnx.sparse import densify

Converter = Callable[[OpContext], None]
Folder = Callable[[OpContext], np.ndarray]

_PADDING_SAME = tflite.Padding.SAME
_PADDING_VALID = tflite.Padding.VALID
# Custom ops carry the C enum TfLitePadding, which differs from the schema's: 0 unknown, 1 same, 2 valid.
_C_PADDING_SAME = 1
_C_PADDING_VALID = 2


def _same_pads(in_size: int, out_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite's SAME padding: the extra row/column, if any, goes after (bottom/right)."""
    effective = (kernel - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2


def _pads(
    ctx: OpContext, padding: int, kernel: tuple[int, int], strides: tuple[int, int], dilations: tuple[int, int]
) -> list[int]:
    """ONNX pads [top, left, bottom, right] for a 2-D window op on NHWC input 0 producing output 0."""
    if padding == _PADDING_VALID:
        return [0, 0, 0, 0]
    if padding != _PADDING_SAME:
        raise ctx.error(f"padding mode {padding} is not supported")
    _, in_h, in_w, _ = ctx.shape(0)
    _, out_h, out_w, _ = ctx.out_tensor().shape
    top, bottom = _same_pads(in_h, out_h, kernel[0], strides[0], dilations[0])
    left, right = _same_pads(in_w, out_w, kernel[1], strides[1], dilations[1])
    return [top, left, bottom, right]


def _add_pads(pads: list[int], folded: tuple[int, int, int, int]) -> list[int]:
    """Conv pads [top, left, bottom, right] plus a zero PAD folded into the convolution."""
    return [p + f for p, f in zip(pads, folded, strict=True)]


_CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def _bias(ctx: OpContext, index: int, channels: int) -> np.ndarray:
    if ctx.has_input(index):
        return ctx.const(index).astype(np.float32).reshape(channels)
    return np.zeros(channels, dtype=np.float32)


def _widen(weights: np.ndarray, bias: np.ndarray, out_c: int, in_c: int) -> tuple[np.ndarray, np.ndarray]:
    """OIHW weights and bias with zero filters appended up to `out_c` and zero input channels up to `in_c`
    (for activations carried with extra zero channels, see channels.py)."""
    o, i = weights.shape[:2]
    if (o, i) == (out_c, in_c):
        return weights, bias
    wide = np.zeros((out_c, in_c, *weights.shape[2:]), dtype=np.float32)
    wide[:o, :i] = weights
    return wide, np.concatenate([bias, np.zeros(out_c - o, dtype=np.float32)])


def _weights(ctx: OpContext, index: int) -> np.ndarray:
    weights = ctx.const(index)
    if weights.dtype != np.float32:
        raise ctx.error(f"weights of type {weights.dtype} are not supported (expected float32 after folding)")
    return weights


# --- folds ----------------------------------------------------------------------------------------


def fold_dequantize(ctx: OpContext) -> np.ndarray:
    source = ctx.tensor(0)
    data = ctx.const(0)
    if data.dtype == np.float16:
        return data.astype(np.float32)
    quant = source.quantization
    if quant is None:
        raise ctx.error(f"DEQUANTIZE of {data.dtype} without quantization parameters")
    shape = [1] * data.ndim
    if quant.scale.size > 1:
        shape[quant.axis] = quant.scale.size
    scale = quant.scale.reshape(shape)
    zero = quant.zero_point.reshape(shape)
    return ((data.astype(np.int64) - zero).astype(np.float32) * scale).astype(np.float32)


def fold_densify(ctx: OpContext) -> np.ndarray:
    source = ctx.tensor(0)
    if source.sparsity is None or source.data is None:
        raise ctx.error(f"input {source.name!r} is not a sparse constant")
    try:
        return densify(source.data, source.shape, source.sparsity)
    except ValueError as exc:
        raise ctx.error(f"cannot densify {source.name!r}: {exc}") from exc


FOLDERS: dict[str, Folder] = {"DEQUANTIZE": fold_dequantize, "DENSIFY": fold_densify}


# --- convolutions ---------------------------------------------------------------------------------


def conv_2d(ctx: OpContext) -> None:
    opts = ctx.options(tflite.Conv2DOptions)
    weights = _weights(ctx, 1)  # OHWI
    out_c, k_h, k_w, in_c = weights.shape
    groups = ctx.shape(0)[3] // in_c
    strides = (opts.StrideH(), opts.StrideW())
    dilations = (opts.DilationHFactor(), opts.DilationWFactor())
    b = ctx.builder
    _, out_h, out_w, _ = ctx.out_tensor().shape
    w_oihw, bias = weights.transpose(0, 3, 1, 2), _bias(ctx, 2, out_c)
    if groups == 1:
        w_oihw, bias = _widen(w_oihw, bias, ctx.out_channels(), ctx.channels(0))
    resize_mode = ctx.value(0).pending_resize
    if resize_mode is not None:
        # The bilinear resize before this 1x1 convolution runs after it, on fewer channels (see
        # resize_bilinear); the fused activation follows the resize.
        small = b.node(
            "Conv",
            [ctx.value(0).names["nchw"], b.constant(w_oihw, "w"), b.constant(bias, "b")],
            "conv_before_resize",
            kernel_shape=[1, 1],
        )
        y = _resize(b, small, (1, len(bias), out_h, out_w), resize_mode, ctx.hint())
        ctx.set_output(ctx.activation(y, opts.FusedActivationFunction(), channels=len(bias)), "nchw")
        return
    x, folded = ctx.nchw_padded(0)
    pads = _add_pads(_pads(ctx, opts.Padding(), (k_h, k_w), strides, dilations), folded)
    if out_c == 1 and groups == 1 and (k_h, k_w) != (1, 1) and out_h * out_w >= 1024:
        # A spatial convolution to one channel (a mask head) wastes ONNX Runtime's blocked kernels,
        # which compute output channels in blocks of 8 or 16: split it into a depthwise convolution
        # and a 1x1 sum over channels, several times faster.
        spatial = b.node(
            "Conv",
            [x, b.constant(weights[0].transpose(2, 0, 1)[:, None], "w_dw")],
            "head_dw",
            kernel_shape=[k_h, k_w],
            strides=list(strides),
            dilations=list(dilations),
            pads=pads,
            group=in_c,
        )
        ones = np.ones((1, in_c, 1, 1), dtype=np.float32)
        y = b.node("Conv", [spatial, b.constant(ones, "w_sum"), b.constant(_bias(ctx, 2, 1), "b")], ctx.hint())
    else:
        y = b.node(
            "Conv",
            [x, b.constant(w_oihw, "w"), b.constant(bias, "b")],
            ctx.hint(),
            kernel_shape=[k_h, k_w],
            strides=list(strides),
            dilations=list(dilations),
            pads=pads,
            group=groups,
        )
    ctx.set_output(ctx.activation(y, opts.FusedActivationFunction()), "nchw")


def depthwise_conv_2d(ctx: OpContext) -> None:
    opts = ctx.options(tflite.DepthwiseConv2DOptions)
    weights = _weights(ctx, 1)  # [1, kh, kw, in_c * multiplier]
    _, k_h, k_w, out_c = weights.shape
    strides = (opts.StrideH(), opts.StrideW())
    dilations = (opts.DilationHFactor(), opts.DilationWFactor())
    x, folded = ctx.nchw_padded(0)
    b = ctx.builder
    # A widened input (see channels.py) gets zero filters for its extra channels, which stay zero.
    w_oihw, bias = _widen(weights.transpose(3, 0, 1, 2), _bias(ctx, 2, out_c), ctx.out_channels(), 1)
    y = b.node(
        "Conv",
        [x, b.constant(w_oihw, "w"), b.constant(bias, "b")],
        ctx.hint(),
        kernel_shape=[k_h, k_w],
        strides=list(strides),
        dilations=list(dilations),
        pads=_add_pads(_pads(ctx, opts.Padding(), (k_h, k_w), strides, dilations), folded),
        group=ctx.channels(0),
    )
    ctx.set_output(ctx.activation(y, opts.FusedActivationFunction()), "nchw")


def transpose_conv_bias(ctx: OpContext) -> None:
    """MediaPipe's Convolution2DTransposeBias: TRANSPOSE_CONV with a bias, options a TfLiteTransposeConvParams.

    The custom options are the raw C struct {TfLitePadding padding; int stride_width; int stride_height}
    (padding in the C enum: 1 same, 2 valid).
    Output size = stride * (in - 1) + kernel - pad_total, with pad_total (SAME) = max(0, k - (in - 1) % s - 1)
    and pad_total // 2 before (mediapipe/util/tflite/operations/transpose_conv_bias.cc).
    """
    if len(ctx.op.custom_options) < 12:
        raise ctx.error(f"custom options hold {len(ctx.op.custom_options)} bytes, expected 12 (padding, strides)")
    padding, stride_w, stride_h = struct.unpack("<iii", ctx.op.custom_options[:12])
    weights = _weights(ctx, 1)  # OHWI
    out_c, k_h, k_w, _ = weights.shape
    _, in_h, in_w, _ = ctx.shape(0)
    if padding == _C_PADDING_SAME:
        total_h = max(0, k_h - (in_h - 1) % stride_h - 1)
        total_w = max(0, k_w - (in_w - 1) % stride_w - 1)
    elif padding == _C_PADDING_VALID:
        total_h = total_w = 0
    else:
        raise ctx.error(f"padding mode {padding} is not supported")
    expected = (stride_h * (in_h - 1) + k_h - total_h, stride_w * (in_w - 1) + k_w - total_w)
    if tuple(ctx.out_tensor().shape[1:3]) != expected:
        raise ctx.error(f"output shape {ctx.out_tensor().shape} does not match the op's arithmetic {expected}")
    b = ctx.builder
    y = b.node(
        "ConvTranspose",
        [ctx.nchw(0), b.constant(weights.transpose(3, 0, 1, 2), "w"), b.constant(_bias(ctx, 2, out_c), "b")],
        ctx.hint(),
        kernel_shape=[k_h, k_w],
        strides=[stride_h, stride_w],
        pads=[total_h // 2, total_w // 2, total_h - total_h // 2, total_w - total_w // 2],
    )
    ctx.set_output(y, "nchw")


# --- pooling --------------------------------------------------------------------------------------


def _pool(ctx: OpContext, onnx_op: str) -> None:
    opts = ctx.options(tflite.Pool2DOptions)
    kernel = (opts.FilterHeight(), opts.FilterWidth())
    strides = (opts.StrideH(), opts.StrideW())
    pads = _pads(ctx, opts.Padding(), kernel, strides, (1, 1))
    # TFLite averages over the valid (unpadded) cells only, which is ONNX's count_include_pad=0 default.
    y = ctx.builder.node(
        onnx_op, [ctx.nchw(0)], ctx.hint(), kernel_shape=list(kernel), strides=list(strides), pads=pads
    )
    ctx.set_output(ctx.activation(y, opts.FusedActivationFunction()), "nchw")


def max_pool_2d(ctx: OpContext) -> None:
    _pool(ctx, "MaxPool")


def average_pool_2d(ctx: OpContext) -> None:
    _pool(ctx, "AveragePool")


# --- elementwise ----------------------------------------------------------------------------------


def _elementwise_layout(ctx: OpContext) -> tuple[Layout, int]:
    rank = len(ctx.out_tensor().shape)
    runtime = [i for i in range(len(ctx.op.inputs)) if not ctx.is_const(i)]
    # Stay channel-first unless every runtime input is only available natively.
    if (
        rank == 4
        and all(len(ctx.shape(i)) == 4 for i in runtime)
        and (not runtime or any(ctx.runtime_layout(i) == "nchw" for i in runtime))
    ):
        return "nchw", rank
    return "native", rank


def _binary(ctx: OpContext, onnx_op: str, options_cls: type) -> None:
    layout, rank = _elementwise_layout(ctx)
    fused = ctx.options(options_cls).FusedActivationFunction()
    y = ctx.builder.node(onnx_op, [ctx.operand(0, layout, rank), ctx.operand(1, layout, rank)], ctx.hint())
    channels = ctx.out_channels() if layout == "nchw" else None
    ctx.set_output(ctx.activation(y, fused, channels=channels), layout)


def add(ctx: OpContext) -> None:
    _binary(ctx, "Add", tflite.AddOptions)


def mul(ctx: OpContext) -> None:
    _binary(ctx, "Mul", tflite.MulOptions)


def _unary(ctx: OpContext, onnx_op: str) -> None:
    layout = ctx.runtime_layout(0)
    y = ctx.builder.node(onnx_op, [ctx.builder.layout_of(ctx.value(0), layout)], ctx.hint())
    ctx.set_output(y, layout)


def relu(ctx: OpContext) -> None:
    _unary(ctx, "Relu")


def logistic(ctx: OpContext) -> None:
    _unary(ctx, "Sigmoid")


def hard_swish(ctx: OpContext) -> None:
    _unary(ctx, "HardSwish")


def relu6(ctx: OpContext) -> None:
    layout = ctx.runtime_layout(0)
    x = ctx.builder.layout_of(ctx.value(0), layout)
    channels = ctx.out_channels() if layout == "nchw" else None
    ctx.set_output(ctx.activation(x, tflite.ActivationFunctionType.RELU6, channels=channels), layout)


def prelu(ctx: OpContext) -> None:
    """PRELU(x) = x + (1 - alpha) * Relu(-x), both steps as 1x1 depthwise convolutions.

    ONNX Runtime's PRelu kernel takes a slow broadcasting path and forces layout reorders around it.
    Here Runtime fuses the Relu into the first convolution and the addition into the second, so the
    whole activation is two passes in its blocked layout. Exact for x >= 0; for x < 0 within an ulp.
    """
    alpha = ctx.const(1).astype(np.float32)
    channels = ctx.shape(0)[-1]
    if len(ctx.shape(0)) != 4 or alpha.size not in (1, channels):
        raise ctx.error(f"PRELU needs a 4-D input and a per-channel alpha, got {ctx.shape(0)} and {alpha.shape}")
    alpha = np.broadcast_to(alpha.reshape(-1), (channels,)).reshape(channels, 1, 1, 1)
    b = ctx.builder
    x = ctx.nchw(0)
    minus = -np.ones((channels, 1, 1, 1), dtype=np.float32)
    flipped = b.node("Conv", [x, b.constant(minus, "prelu_flip")], "prelu_flip", group=channels, kernel_shape=[1, 1])
    negative = b.node("Relu", [flipped], "prelu_negative")
    scaled = b.node(
        "Conv", [negative, b.constant(1.0 - alpha, "prelu_slope")], "prelu_scaled", group=channels, kernel_shape=[1, 1]
    )
    ctx.set_output(b.node("Add", [x, scaled], ctx.hint()), "nchw")


# --- shape ----------------------------------------------------------------------------------------


def pad(ctx: OpContext) -> None:
    paddings = ctx.const(1).astype(np.int64).reshape(-1, 2)
    rank = len(ctx.shape(0))
    if paddings.shape[0] != rank:
        raise ctx.error(f"paddings have {paddings.shape[0]} rows for a rank-{rank} input")
    layout: Layout = ctx.runtime_layout(0) if rank == 4 else "native"
    b = ctx.builder
    if layout == "nchw" and not paddings[:3].any():
        # Zero channels appended (BlazeBlock shortcuts): a 1x1 convolution with identity weights, exact,
        # keeps ONNX Runtime in its blocked layout (Pad is not) and fuses with the residual Add after it.
        in_c = ctx.shape(0)[3]
        before = int(paddings[3, 0])
        weights = np.zeros((ctx.out_channels(), ctx.channels(0), 1, 1), dtype=np.float32)  # widened: channels.py
        weights[before : before + in_c, :in_c, 0, 0] = np.eye(in_c, dtype=np.float32)
        y = b.node("Conv", [ctx.nchw(0), b.constant(weights, "channel_pad")], ctx.hint(), kernel_shape=[1, 1])
        ctx.set_output(y, "nchw")
        return
    if ctx.out_channels() != ctx.out_tensor().shape[-1]:
        raise ctx.error("a channel PAD on a channel-last input cannot give its output extra channels")
    spatial_only = not paddings[0].any() and not paddings[3].any() and (paddings >= 0).all()
    only_convolutions = all(
        op.kind in _CONVOLUTIONS and op.inputs[0] == ctx.op.outputs[0] and ctx.op.outputs[0] not in op.inputs[1:]
        for op in ctx.consumers()
    )
    if rank == 4 and spatial_only and ctx.consumers() and only_convolutions and not ctx.is_graph_output():
        # Zero padding read only by convolutions (TF's explicit padding before stride-2 convs): fold it
        # into their pads instead of materialising a padded copy.
        top, bottom = (int(v) for v in paddings[1])
        left, right = (int(v) for v in paddings[2])
        ctx.set_padded_output(ctx.nchw(0), (top, left, bottom, right))
        return
    if layout == "nchw":
        paddings = paddings[list(NHWC_TO_NCHW)]
    x = b.layout_of(ctx.value(0), layout)
    pads = b.int64s(np.concatenate([paddings[:, 0], paddings[:, 1]]), "pads")
    ctx.set_output(b.node("Pad", [x, pads], ctx.hint(), mode="constant"), layout)


def reshape(ctx: OpContext) -> None:
    # The output tensor's static shape is authoritative (the new_shape input/option may hold -1).
    shape = ctx.out_tensor().shape
    b = ctx.builder
    ctx.set_output(b.node("Reshape", [ctx.native(0), b.int64s(shape, "shape")], ctx.hint()), "native")


def concatenation(ctx: OpContext) -> None:
    opts = ctx.options(tflite.ConcatenationOptions)
    rank = len(ctx.out_tensor().shape)
    axis = opts.Axis() % rank
    layout, _ = _elementwise_layout(ctx)
    inputs = [ctx.operand(i, layout, rank) for i in range(len(ctx.op.inputs))]
    if layout == "nchw":
        axis = NHWC_TO_NCHW.index(axis)
    y = ctx.builder.node("Concat", inputs, ctx.hint(), axis=axis)
    channels = ctx.out_tensor().shape[3] if layout == "nchw" else None
    ctx.set_output(ctx.activation(y, opts.FusedActivationFunction(), channels=channels), layout)


def _resize(b: GraphBuilder, x: str, sizes: tuple[int, int, int, int], mode: str, hint: str) -> str:
    sizes_name = b.int64s(list(sizes), "sizes")
    return b.node("Resize", [x, "", "", sizes_name], hint, mode="linear", coordinate_transformation_mode=mode)


def _commutes_with_resize(ctx: OpContext, op: OpInfo) -> bool:
    """Whether `op`, the only reader of this resize's output, is a 1x1 convolution with fewer output channels
    than input channels, so that it can run before the resize on a smaller map.

    Bilinear weights sum to one, so resize(conv(x) + bias) = conv(resize(x)) + bias; the fused activation
    is the only non-linear step and runs after the resize. pose_detection upsamples 1152 channels to convolve
    them down to 192 right after: this saves three quarters of that convolution and most of the resize.
    """
    if op.kind != "CONV_2D" or op.inputs[0] != ctx.op.outputs[0] or ctx.op.outputs[0] in op.inputs[1:]:
        return False
    weights = ctx.graph.tensors[op.inputs[1]].shape  # OHWI
    if len(weights) != 4 or weights[1:3] != (1, 1) or weights[0] >= weights[3] or weights[3] != ctx.shape(0)[3]:
        return False
    opts = op.options(tflite.Conv2DOptions)
    return (opts.StrideH(), opts.StrideW(), opts.DilationHFactor(), opts.DilationWFactor()) == (1, 1, 1, 1)


def resize_bilinear(ctx: OpContext) -> None:
    opts = ctx.options(tflite.ResizeBilinearOptions)
    align, half_pixel = bool(opts.AlignCorners()), bool(opts.HalfPixelCenters())
    if align and half_pixel:
        raise ctx.error("align_corners and half_pixel_centers cannot both be set")
    # TFLite: src = dst * in/out (asymmetric), (dst + 0.5) * in/out - 0.5 (half pixel, clamped at 0),
    # or dst * (in - 1)/(out - 1) (align corners); ONNX Resize's modes of the same names.
    mode = "align_corners" if align else ("half_pixel" if half_pixel else "asymmetric")
    consumers = ctx.consumers()
    if len(consumers) == 1 and not ctx.is_graph_output() and _commutes_with_resize(ctx, consumers[0]):
        ctx.set_resized_output(ctx.nchw(0), mode)
        return
    n, out_h, out_w, c = ctx.out_tensor().shape
    ctx.set_output(_resize(ctx.builder, ctx.nchw(0), (n, c, out_h, out_w), mode, ctx.hint()), "nchw")


def depth_to_space(ctx: OpContext) -> None:
    block = ctx.options(tflite.DepthToSpaceOptions).BlockSize()
    # TensorFlow's depth_to_space splits the channel axis as (row, column, channel): ONNX mode DCR.
    channels = ctx.out_tensor().shape[3]
    b = ctx.builder
    # As a channel gather into (channel, row, column) order and a grouped 2-D ConvTranspose with one-hot
    # kernels: exact (one term per output), and ONNX Runtime runs it faster than its DepthToSpace.
    cells = block * block
    k = np.arange(cells * channels)
    order = ((k % cells) * channels + k // cells).astype(np.int64)  # (row * block + column) * C + c
    kernels = np.zeros((cells * channels, 1, block, block), dtype=np.float32)
    kernels[k, 0, (k % cells) // block, k % block] = 1.0
    gathered = b.node("Gather", [ctx.nchw(0), b.int64s(order, "d2s_order")], "d2s_gather", axis=1)
    y = b.node(
        "ConvTranspose",
        [gathered, b.constant(kernels, "d2s_kernels")],
        ctx.hint(),
        kernel_shape=[block, block],
        strides=[block, block],
        group=channels,
    )
    ctx.set_output(y, "nchw")


CONVERTERS: dict[str, Converter] = {
    "CONV_2D": conv_2d,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "CUSTOM:Convolution2DTransposeBias": transpose_conv_bias,
    "MAX_POOL_2D": max_pool_2d,
    "AVERAGE_POOL_2D": average_pool_2d,
    "ADD": add,
    "MUL": mul,
    "RELU": relu,
    "RELU6": relu6,
    "LOGISTIC": logistic,
    "HARD_SWISH": hard_swish,
    "PRELU": prelu,
    "PAD": pad,
    "RESHAPE": reshape,
    "CONCATENATION": concatenation,
    "RESIZE_BILINEAR": resize_bilinear,
    "DEPTH_TO_SPACE": depth_to_space,
}

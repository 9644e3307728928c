"""The TFLite → ONNX converter against the LiteRT interpreter.

Two levels: the five real MediaPipe models on real photos and random inputs, with the tolerances the
perception pipeline needs; and tiny single-purpose TFLite models written here with the `tflite`
package's flatbuffer builders (no TensorFlow) for the ops that are easy to get subtly wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import matplotlib.cbook
import matplotlib.image
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skimage.data
import tflite

from edge.model_store import PERCEPTION_MODELS, ModelStore
from export.tflite_onnx import OPSET, ConversionError, convert_tflite
from export.tflite_onnx.reader import SparseDim, Sparsity
from export.tflite_onnx.sparse import densify
from tests.support.litert_reference import LiteRTModel, model_input, random_input, tflite_bytes


def _session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _run_onnx(session: ort.InferenceSession, x: np.ndarray) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0))))


# --- the five MediaPipe models ---------------------------------------------------------------------

PIXELS, LOGIT, PROBABILITY, MASK_LOGIT, METRES = "px", "logit", "probability", "mask logit", "metres"
TOLERANCE = {PIXELS: 0.05, LOGIT: 1e-3, PROBABILITY: 1e-3, MASK_LOGIT: 1e-2, METRES: 1e-3}


@dataclass(frozen=True)
class OutputMeaning:
    """How to read one output: split into rows of `width` columns, each column range with its meaning."""

    width: int
    columns: tuple[tuple[slice, str], ...]


# From the models' documented contracts (MediaPipe's calculators that decode them).
OUTPUTS: dict[str, dict[str, OutputMeaning]] = {
    "pose_detection": {
        "Identity": OutputMeaning(12, ((slice(0, 12), PIXELS),)),  # box + 4 keypoints, input pixels
        "Identity_1": OutputMeaning(1, ((slice(0, 1), LOGIT),)),
    },
    "face_detection_short_range": {
        "regressors": OutputMeaning(16, ((slice(0, 16), PIXELS),)),
        "classificators": OutputMeaning(1, ((slice(0, 1), LOGIT),)),
    },
    "pose_landmark_full": {
        "Identity": OutputMeaning(5, ((slice(0, 3), PIXELS), (slice(3, 5), LOGIT))),  # x y z, visibility, presence
        "Identity_1": OutputMeaning(1, ((slice(0, 1), PROBABILITY),)),  # pose flag
        "Identity_2": OutputMeaning(1, ((slice(0, 1), MASK_LOGIT),)),  # segmentation
        "Identity_3": OutputMeaning(39, ((slice(0, 39), MASK_LOGIT),)),  # heatmap
        "Identity_4": OutputMeaning(3, ((slice(0, 3), METRES),)),  # world landmarks
    },
    "face_landmark": {
        "conv2d_21": OutputMeaning(3, ((slice(0, 3), PIXELS),)),  # 468 x y z
        "conv2d_31": OutputMeaning(1, ((slice(0, 1), LOGIT),)),  # face flag
    },
    "selfie_segmentation": {"activation_10": OutputMeaning(1, ((slice(0, 1), PROBABILITY),))},
}


def _photo(kind: str) -> np.ndarray:
    if kind == "astronaut":
        return np.asarray(skimage.data.astronaut())
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(matplotlib.image.imread(Path(str(path))))[..., :3]


def _compare(name: str, ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> list[str]:
    failures = []
    assert set(ours) == set(ref) == set(OUTPUTS[name]), (set(ours), set(ref))
    for output, meaning in OUTPUTS[name].items():
        assert ours[output].shape == ref[output].shape, output
        a = ours[output].reshape(-1, meaning.width).astype(np.float64)
        b = ref[output].reshape(-1, meaning.width).astype(np.float64)
        for columns, kind in meaning.columns:
            x, y = a[:, columns], b[:, columns]
            if kind in (LOGIT, MASK_LOGIT):
                x, y = _sigmoid(x), _sigmoid(y)
            error = float(np.abs(x - y).max())
            if error > TOLERANCE[kind]:
                failures.append(f"{name}.{output}[{columns.start}:{columns.stop}] {kind}: {error:.3g}")
    return failures


@pytest.fixture(scope="module")
def store(model_dir: Path) -> ModelStore:
    return ModelStore(model_dir)


@pytest.mark.parametrize("name", PERCEPTION_MODELS)
def test_converted_model_matches_litert(name: str, store: ModelStore) -> None:
    reference = LiteRTModel.load(tflite_bytes(name, store.directory))
    session = _session(store.path(name))
    shape = reference.input_shape
    inputs = [model_input(name, _photo("astronaut"), shape), model_input(name, _photo("grace_hopper"), shape)]
    inputs += [random_input(name, shape, seed) for seed in (0, 1)]
    failures: list[str] = []
    for x in inputs:
        failures += _compare(name, _run_onnx(session, x), reference.run(x))
    assert not failures, failures


@pytest.mark.parametrize("name", PERCEPTION_MODELS)
def test_converted_model_keeps_the_tflite_interface(name: str, store: ModelStore) -> None:
    data = tflite_bytes(name, store.directory)
    reference = LiteRTModel.load(data).interpreter
    model = onnx.load(str(store.path(name)))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    ours_in = [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in model.graph.input]
    ours_out = [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in model.graph.output]
    assert ours_in == [(d["name"], d["shape"].tolist()) for d in reference.get_input_details()]
    assert sorted(ours_out) == sorted((d["name"], d["shape"].tolist()) for d in reference.get_output_details())
    # The body is channel-first: one Transpose after the input, none elsewhere but before 4-D outputs.
    transposes = [n for n in model.graph.node if n.op_type == "Transpose"]
    four_d_outputs = [v for v in model.graph.output if len(v.type.tensor_type.shape.dim) == 4]
    assert len(transposes) <= 1 + len(four_d_outputs) + sum(n.op_type == "Reshape" for n in model.graph.node)
    ops = {n.op_type for n in model.graph.node}
    assert "PRelu" not in ops and "DequantizeLinear" not in ops
    assert all(init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64) for init in model.graph.initializer)


# --- tiny TFLite models ---------------------------------------------------------------------------

T = tflite.TensorType
B = tflite.BuiltinOperator
Opts = tflite.BuiltinOptions


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    type: int = T.FLOAT32
    data: np.ndarray | None = None
    sparsity: Sparsity | None = None


@dataclass
class Op:
    code: int | str  # builtin operator or custom code
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0
    options: Callable[[flatbuffers.Builder], int] | None = None
    custom_options: bytes = b""


@dataclass
class TinyModel:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def add(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def build(self) -> bytes:
        b = flatbuffers.Builder(1024)

        def int_vector(start: Callable[[Any, int], None], values: list[int]) -> int:
            start(b, len(values))
            for v in reversed(values):
                b.PrependInt32(v)
            return int(b.EndVector())

        def table_vector(start: Callable[[Any, int], None], offsets: list[int]) -> int:
            start(b, len(offsets))
            for off in reversed(offsets):
                b.PrependUOffsetTRelative(off)
            return int(b.EndVector())

        buffer_offsets = []
        datas = [None, *[t.data for t in self.tensors]]
        for data in datas:
            raw = None if data is None else b.CreateNumpyVector(np.frombuffer(data.tobytes(), dtype=np.uint8))
            tflite.BufferStart(b)
            if raw is not None:
                tflite.BufferAddData(b, raw)
            buffer_offsets.append(tflite.BufferEnd(b))

        tensor_offsets = []
        for i, t in enumerate(self.tensors):
            name = b.CreateString(t.name)
            shape = int_vector(tflite.TensorStartShapeVector, list(t.shape))
            sparsity = self._sparsity(b, t.sparsity, int_vector, table_vector) if t.sparsity else None
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, t.type)
            tflite.TensorAddBuffer(b, i + 1 if t.data is not None else 0)
            tflite.TensorAddName(b, name)
            if sparsity is not None:
                tflite.TensorAddSparsity(b, sparsity)
            tensor_offsets.append(tflite.TensorEnd(b))

        codes: list[int | str] = []
        for op in self.ops:
            if op.code not in codes:
                codes.append(op.code)
        code_offsets = []
        for code in codes:
            custom = b.CreateString(code) if isinstance(code, str) else None
            tflite.OperatorCodeStart(b)
            builtin = B.CUSTOM if isinstance(code, str) else code
            tflite.OperatorCodeAddBuiltinCode(b, builtin)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(builtin, 127))
            tflite.OperatorCodeAddVersion(b, 1)
            if custom is not None:
                tflite.OperatorCodeAddCustomCode(b, custom)
            code_offsets.append(tflite.OperatorCodeEnd(b))

        op_offsets = []
        for op in self.ops:
            ins = int_vector(tflite.OperatorStartInputsVector, op.inputs)
            outs = int_vector(tflite.OperatorStartOutputsVector, op.outputs)
            opts = op.options(b) if op.options else None
            custom_opts = b.CreateByteVector(op.custom_options) if op.custom_options else None
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, codes.index(op.code))
            tflite.OperatorAddInputs(b, ins)
            tflite.OperatorAddOutputs(b, outs)
            if opts is not None:
                tflite.OperatorAddBuiltinOptionsType(b, op.options_type)
                tflite.OperatorAddBuiltinOptions(b, opts)
            if custom_opts is not None:
                tflite.OperatorAddCustomOptions(b, custom_opts)
            op_offsets.append(tflite.OperatorEnd(b))

        tensors_vec = table_vector(tflite.SubGraphStartTensorsVector, tensor_offsets)
        ops_vec = table_vector(tflite.SubGraphStartOperatorsVector, op_offsets)
        in_vec = int_vector(tflite.SubGraphStartInputsVector, self.inputs)
        out_vec = int_vector(tflite.SubGraphStartOutputsVector, self.outputs)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddInputs(b, in_vec)
        tflite.SubGraphAddOutputs(b, out_vec)
        subgraph = tflite.SubGraphEnd(b)

        subgraphs = table_vector(tflite.ModelStartSubgraphsVector, [subgraph])
        codes_vec = table_vector(tflite.ModelStartOperatorCodesVector, code_offsets)
        buffers_vec = table_vector(tflite.ModelStartBuffersVector, buffer_offsets)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs)
        tflite.ModelAddBuffers(b, buffers_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _sparsity(b: flatbuffers.Builder, sp: Sparsity, int_vector: Any, table_vector: Any) -> int:
        dims = []
        for dim in sp.dims:
            arrays = []
            if not dim.dense:
                for values in (dim.segments, dim.indices):
                    vec = int_vector(tflite.Int32VectorStartValuesVector, [int(v) for v in values])
                    tflite.Int32VectorStart(b)
                    tflite.Int32VectorAddValues(b, vec)
                    arrays.append(tflite.Int32VectorEnd(b))
            tflite.DimensionMetadataStart(b)
            tflite.DimensionMetadataAddFormat(
                b, tflite.DimensionType.DENSE if dim.dense else tflite.DimensionType.SPARSE_CSR
            )
            tflite.DimensionMetadataAddDenseSize(b, dim.dense_size)
            if arrays:
                tflite.DimensionMetadataAddArraySegmentsType(b, tflite.SparseIndexVector.Int32Vector)
                tflite.DimensionMetadataAddArraySegments(b, arrays[0])
                tflite.DimensionMetadataAddArrayIndicesType(b, tflite.SparseIndexVector.Int32Vector)
                tflite.DimensionMetadataAddArrayIndices(b, arrays[1])
            dims.append(tflite.DimensionMetadataEnd(b))
        order = int_vector(tflite.SparsityParametersStartTraversalOrderVector, list(sp.traversal_order))
        dims_vec = table_vector(tflite.SparsityParametersStartDimMetadataVector, dims)
        tflite.SparsityParametersStart(b)
        tflite.SparsityParametersAddTraversalOrder(b, order)
        tflite.SparsityParametersAddDimMetadata(b, dims_vec)
        return int(tflite.SparsityParametersEnd(b))


def _csr_last_dim(dense: np.ndarray) -> tuple[np.ndarray, Sparsity]:
    """Encode `dense` with its leading dims dense and its last dim CSR (the layout of pose_detection's weights)."""
    rows = dense.reshape(-1, dense.shape[-1])
    segments, indices, values = [0], [], []
    for row in rows:
        nz = np.flatnonzero(row)
        indices += nz.tolist()
        values += row[nz].tolist()
        segments.append(len(indices))
    dims = [SparseDim(True, n, np.zeros(0, np.int64), np.zeros(0, np.int64)) for n in dense.shape[:-1]]
    dims.append(SparseDim(False, 0, np.asarray(segments), np.asarray(indices)))
    sparsity = Sparsity(traversal_order=tuple(range(dense.ndim)), block_map=(), dims=tuple(dims))
    return np.asarray(values, dtype=dense.dtype), sparsity


def _check_parity(model: TinyModel, x: np.ndarray, name: str = "tiny", atol: float = 1e-5) -> onnx.ModelProto:
    data = model.build()
    reference = LiteRTModel.load(data).run(x)
    converted = convert_tflite(data, name)
    ours = _run_onnx(_session(converted), x)
    assert set(ours) == set(reference)
    for key, expected in reference.items():
        assert ours[key].shape == expected.shape, key
        np.testing.assert_allclose(ours[key], expected, atol=atol, rtol=1e-5, err_msg=key)
    return converted


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _conv_options(padding: int, stride: int, activation: int) -> Callable[[flatbuffers.Builder], int]:
    def build(b: flatbuffers.Builder) -> int:
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, padding)
        tflite.Conv2DOptionsAddStrideW(b, stride)
        tflite.Conv2DOptionsAddStrideH(b, stride)
        tflite.Conv2DOptionsAddDilationWFactor(b, 1)
        tflite.Conv2DOptionsAddDilationHFactor(b, 1)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, activation)
        return int(tflite.Conv2DOptionsEnd(b))

    return build


def test_densify_places_csr_values_where_they_were() -> None:
    dense = _rng().normal(size=(6, 2, 3, 5)).astype(np.float32)
    dense[np.abs(dense) < 0.8] = 0
    values, sparsity = _csr_last_dim(dense)
    np.testing.assert_array_equal(densify(values, dense.shape, sparsity), dense)
    with pytest.raises(ValueError, match="buffer holds"):
        densify(values[:-1], dense.shape, sparsity)


def test_sparse_fp16_weights_are_densified_and_dequantized() -> None:
    """DENSIFY → DEQUANTIZE(fp16) → CONV_2D (SAME, stride 2, fused RELU6): the weight path of pose_detection."""
    weights = _rng(1).normal(size=(6, 3, 3, 4)).astype(np.float16)
    weights[np.abs(weights) < 0.7] = 0
    values, sparsity = _csr_last_dim(weights)
    m = TinyModel()
    x = m.add(Tensor("x", (1, 7, 6, 4)))
    sparse = m.add(Tensor("w_sparse", weights.shape, T.FLOAT16, values, sparsity))
    dense16 = m.add(Tensor("w_fp16", weights.shape, T.FLOAT16))
    dense32 = m.add(Tensor("w", weights.shape))
    bias = m.add(Tensor("bias", (6,), data=_rng(2).normal(size=6).astype(np.float32)))
    y = m.add(Tensor("y", (1, 4, 3, 6)))
    m.ops = [
        Op(B.DENSIFY, [sparse], [dense16]),
        Op(B.DEQUANTIZE, [dense16], [dense32]),
        Op(B.CONV_2D, [x, dense32, bias], [y], Opts.Conv2DOptions, _conv_options(tflite.Padding.SAME, 2, 3)),
    ]
    m.inputs, m.outputs = [x], [y]
    converted = _check_parity(m, _rng(3).normal(size=(1, 7, 6, 4)).astype(np.float32) * 2)
    assert {n.op_type for n in converted.graph.node} == {"Transpose", "Conv", "Clip"}


@pytest.mark.parametrize(("kernel", "stride", "size"), [(2, 2, (4, 5)), (3, 2, (3, 4)), (4, 2, (5, 3)), (3, 1, (4, 4))])
def test_convolution2d_transpose_bias(kernel: int, stride: int, size: tuple[int, int]) -> None:
    """MediaPipe's custom op: OHWI weights, bias, options {padding, stride_w, stride_h} as raw int32s."""
    h, w = size
    total = max(0, kernel - (h - 1) % stride - 1), max(0, kernel - (w - 1) % stride - 1)
    out = (stride * (h - 1) + kernel - total[0], stride * (w - 1) + kernel - total[1])
    m = TinyModel()
    x = m.add(Tensor("x", (1, h, w, 3)))
    weights = m.add(Tensor("w", (2, kernel, kernel, 3), data=_rng(4).normal(size=(2, kernel, kernel, 3)).astype("f4")))
    bias = m.add(Tensor("b", (2,), data=np.array([0.5, -1.25], np.float32)))
    y = m.add(Tensor("y", (1, *out, 2)))
    options = struct.pack("<iii", 1, stride, stride)  # C enum TfLitePadding: 1 = same
    m.ops = [Op("Convolution2DTransposeBias", [x, weights, bias], [y], custom_options=options)]
    m.inputs, m.outputs = [x], [y]
    _check_parity(m, _rng(5).normal(size=(1, h, w, 3)).astype(np.float32))


def _resize_model(in_hw: tuple[int, int], out_hw: tuple[int, int], align: bool, half: bool) -> TinyModel:
    def options(b: flatbuffers.Builder) -> int:
        tflite.ResizeBilinearOptionsStart(b)
        tflite.ResizeBilinearOptionsAddAlignCorners(b, align)
        tflite.ResizeBilinearOptionsAddHalfPixelCenters(b, half)
        return int(tflite.ResizeBilinearOptionsEnd(b))

    m = TinyModel()
    x = m.add(Tensor("x", (1, *in_hw, 3)))
    size = m.add(Tensor("size", (2,), T.INT32, np.array(out_hw, np.int32)))
    y = m.add(Tensor("y", (1, *out_hw, 3)))
    m.ops = [Op(B.RESIZE_BILINEAR, [x, size], [y], Opts.ResizeBilinearOptions, options)]
    m.inputs, m.outputs = [x], [y]
    return m


@pytest.mark.parametrize(("align", "half"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize(("in_hw", "out_hw"), [((5, 7), (9, 4)), ((4, 4), (8, 8)), ((7, 3), (2, 11))])
def test_resize_bilinear_modes(align: bool, half: bool, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    x = _rng(6).normal(size=(1, *in_hw, 3)).astype(np.float32)
    converted = _check_parity(_resize_model(in_hw, out_hw, align, half), x)
    resize = next(n for n in converted.graph.node if n.op_type == "Resize")
    mode = next(a.s.decode() for a in resize.attribute if a.name == "coordinate_transformation_mode")
    assert mode == ("align_corners" if align else "half_pixel" if half else "asymmetric")


def test_pad_depth_to_space_and_channel_first_body() -> None:
    """PAD on every axis (channels too, as BlazeBlocks do), then DEPTH_TO_SPACE, then ADD of a constant."""

    def d2s_options(b: flatbuffers.Builder) -> int:
        tflite.DepthToSpaceOptionsStart(b)
        tflite.DepthToSpaceOptionsAddBlockSize(b, 2)
        return int(tflite.DepthToSpaceOptionsEnd(b))

    def add_options(b: flatbuffers.Builder) -> int:
        tflite.AddOptionsStart(b)
        tflite.AddOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.RELU)
        return int(tflite.AddOptionsEnd(b))

    m = TinyModel()
    x = m.add(Tensor("x", (1, 3, 4, 5)))
    pads = m.add(Tensor("pads", (4, 2), T.INT32, np.array([[0, 0], [1, 2], [0, 3], [2, 1]], np.int32)))
    padded = m.add(Tensor("padded", (1, 6, 7, 8)))
    spread = m.add(Tensor("spread", (1, 12, 14, 2)))
    offset = m.add(Tensor("offset", (2,), data=np.array([0.25, -0.5], np.float32)))
    y = m.add(Tensor("y", (1, 12, 14, 2)))
    m.ops = [
        Op(B.PAD, [x, pads], [padded]),
        Op(B.DEPTH_TO_SPACE, [padded], [spread], Opts.DepthToSpaceOptions, d2s_options),
        Op(B.ADD, [spread, offset], [y], Opts.AddOptions, add_options),
    ]
    m.inputs, m.outputs = [x], [y]
    converted = _check_parity(m, _rng(7).normal(size=(1, 3, 4, 5)).astype(np.float32))
    assert [n.op_type for n in converted.graph.node].count("Transpose") == 2  # the input and the output


def test_unsupported_op_names_model_op_and_index() -> None:
    m = TinyModel()
    x = m.add(Tensor("x", (1, 4)))
    y = m.add(Tensor("y", (1, 4)))
    z = m.add(Tensor("z", (1, 4)))
    m.ops = [Op(B.RELU, [x], [y]), Op(B.SOFTMAX, [y], [z])]
    m.inputs, m.outputs = [x], [z]
    with pytest.raises(ConversionError, match=r"my_model: op #1 SOFTMAX: .*not supported"):
        convert_tflite(m.build(), "my_model")


def test_damaged_flatbuffer_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match="broken: not a TFLite flatbuffer"):
        convert_tflite(b"\x00" * 64, "broken")


def test_converted_graph_declares_its_opset() -> None:
    m = _resize_model((2, 2), (4, 4), False, True)
    converted = convert_tflite(m.build(), "opset")
    assert OPSET >= 17 and converted.opset_import[0].version == OPSET


def _options(start: Any, end: Any, **fields: Any) -> Callable[[flatbuffers.Builder], int]:
    """Builder of a flat options table: `fields` maps the tflite adder suffix (e.g. 'StrideW') to its value."""

    def build(b: flatbuffers.Builder) -> int:
        start(b)
        for key, value in fields.items():
            getattr(tflite, f"{start.__name__[: -len('Start')]}Add{key}")(b, value)
        return int(end(b))

    return build


def _depthwise_options(padding: int, stride: int, activation: int = 0) -> Callable[[flatbuffers.Builder], int]:
    """Options of a DEPTHWISE_CONV_2D with multiplier 1 and no dilation (`activation` 0: none)."""
    return _options(
        tflite.DepthwiseConv2DOptionsStart, tflite.DepthwiseConv2DOptionsEnd, Padding=padding, StrideW=stride,
        StrideH=stride, DepthMultiplier=1, DilationWFactor=1, DilationHFactor=1, FusedActivationFunction=activation,
    )  # fmt: skip


def test_blaze_block_ops_match_litert() -> None:
    """The rewrites made for speed (RELU6 after ADD, channel PAD as a 1x1 conv, PRELU) and the other
    ops of the five models: depthwise conv, both pools with SAME padding on odd sizes, HARD_SWISH,
    LOGISTIC, MUL with a broadcast, CONCATENATION on channels and RESHAPE to a 2-D output."""
    act = tflite.ActivationFunctionType
    rng = _rng(8)
    m = TinyModel()

    def t(name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        return m.add(Tensor(name, shape, data=None if data is None else data.astype(np.float32)))

    x = t("x", (1, 9, 7, 4))
    dw_w = t("dw_w", (1, 3, 3, 4), rng.normal(size=(1, 3, 3, 4)))
    dw_b = t("dw_b", (4,), rng.normal(size=4))
    dw = t("dw", (1, 5, 4, 4))
    pool_max = t("pool_max", (1, 5, 4, 4))
    pool_pad = m.add(Tensor("pool_pad", (4, 2), T.INT32, np.array([[0, 0], [0, 0], [0, 0], [1, 2]], np.int32)))
    widened = t("widened", (1, 5, 4, 7))
    pw_w = t("pw_w", (7, 1, 1, 4), rng.normal(size=(7, 1, 1, 4)) * 3)
    pw_b = t("pw_b", (7,), rng.normal(size=7))
    pw = t("pw", (1, 5, 4, 7))
    residual = t("residual", (1, 5, 4, 7))  # ADD with fused RELU6, values well beyond 6 and below 0
    alpha = t("alpha", (1, 1, 7), rng.uniform(0.05, 0.5, size=(1, 1, 7)))
    prelu = t("prelu", (1, 5, 4, 7))
    swish = t("swish", (1, 5, 4, 7))
    avg = t("avg", (1, 3, 2, 7))
    gate = t("gate", (1, 3, 2, 7))
    gated = t("gated", (1, 3, 2, 7))
    both = t("both", (1, 3, 2, 14))
    shape = m.add(Tensor("shape", (2,), T.INT32, np.array([1, 84], np.int32)))
    flat = t("flat", (1, 84))
    pool = (tflite.Pool2DOptionsStart, tflite.Pool2DOptionsEnd)
    m.ops = [
        Op(
            B.DEPTHWISE_CONV_2D,
            [x, dw_w, dw_b],
            [dw],
            Opts.DepthwiseConv2DOptions,
            _depthwise_options(tflite.Padding.SAME, 2, act.RELU),
        ),
        Op(
            B.MAX_POOL_2D,
            [dw],
            [pool_max],
            Opts.Pool2DOptions,
            _options(*pool, Padding=tflite.Padding.SAME, StrideW=1, StrideH=1, FilterWidth=3, FilterHeight=3),
        ),
        Op(B.PAD, [pool_max, pool_pad], [widened]),
        Op(B.CONV_2D, [dw, pw_w, pw_b], [pw], Opts.Conv2DOptions, _conv_options(tflite.Padding.VALID, 1, act.NONE)),
        Op(
            B.ADD,
            [pw, widened],
            [residual],
            Opts.AddOptions,
            _options(tflite.AddOptionsStart, tflite.AddOptionsEnd, FusedActivationFunction=act.RELU6),
        ),
        Op(B.PRELU, [pw, alpha], [prelu]),
        Op(B.HARD_SWISH, [prelu], [swish]),
        Op(
            B.AVERAGE_POOL_2D,
            [swish],
            [avg],
            Opts.Pool2DOptions,
            _options(*pool, Padding=tflite.Padding.SAME, StrideW=2, StrideH=2, FilterWidth=3, FilterHeight=3),
        ),
        Op(B.LOGISTIC, [avg], [gate]),
        Op(B.MUL, [avg, gate], [gated], Opts.MulOptions, _options(tflite.MulOptionsStart, tflite.MulOptionsEnd)),
        Op(
            B.CONCATENATION,
            [gated, avg],
            [both],
            Opts.ConcatenationOptions,
            _options(tflite.ConcatenationOptionsStart, tflite.ConcatenationOptionsEnd, Axis=3),
        ),
        Op(B.RESHAPE, [both, shape], [flat]),
    ]
    m.inputs, m.outputs = [x], [flat, residual]
    converted = _check_parity(m, rng.normal(size=(1, 9, 7, 4)).astype(np.float32) * 4)
    ops = [n.op_type for n in converted.graph.node]
    assert "Pad" not in ops and "PRelu" not in ops and "Clip" not in ops


@pytest.mark.parametrize(("stride", "padding"), [(1, tflite.Padding.SAME), (2, tflite.Padding.VALID)])
def test_single_channel_head_conv_is_split_exactly(stride: int, padding: int) -> None:
    """A k×k convolution to one channel on a large map (the segmentation head) becomes depthwise + 1x1 sum."""
    size = 40 if stride == 1 else 80  # the output must be large enough for the split to pay
    out = size if padding == tflite.Padding.SAME else (size - 3) // stride + 1
    m = TinyModel()
    x = m.add(Tensor("x", (1, size, size, 8)))
    w = m.add(Tensor("w", (1, 3, 3, 8), data=_rng(9).normal(size=(1, 3, 3, 8)).astype(np.float32)))
    bias = m.add(Tensor("b", (1,), data=np.array([0.75], np.float32)))
    y = m.add(Tensor("y", (1, out, out, 1)))
    m.ops = [Op(B.CONV_2D, [x, w, bias], [y], Opts.Conv2DOptions, _conv_options(padding, stride, 1))]
    m.inputs, m.outputs = [x], [y]
    converted = _check_parity(m, _rng(10).normal(size=(1, size, size, 8)).astype(np.float32))
    groups = [a.i for n in converted.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert groups == [8]  # the depthwise half; the 1x1 sum has the default group


def test_spatial_pad_read_by_convolutions_is_folded_into_them() -> None:
    """pose_detection pads once and feeds two depthwise convolutions (stride 1 and 2): no Pad node remains."""
    rng = _rng(11)
    m = TinyModel()
    x = m.add(Tensor("x", (1, 8, 8, 4)))
    pads = m.add(Tensor("pads", (4, 2), T.INT32, np.array([[0, 0], [1, 2], [2, 1], [0, 0]], np.int32)))
    padded = m.add(Tensor("padded", (1, 11, 11, 4)))
    outputs = []
    for stride in (1, 2):
        w = m.add(Tensor(f"w{stride}", (1, 3, 3, 4), data=rng.normal(size=(1, 3, 3, 4)).astype(np.float32)))
        bias = m.add(Tensor(f"b{stride}", (4,), data=rng.normal(size=4).astype(np.float32)))
        size = (11 - 3) // stride + 1
        y = m.add(Tensor(f"y{stride}", (1, size, size, 4)))
        options = _depthwise_options(tflite.Padding.VALID, stride)
        m.ops.append(Op(B.DEPTHWISE_CONV_2D, [padded, w, bias], [y], Opts.DepthwiseConv2DOptions, options))
        outputs.append(y)
    m.ops.insert(0, Op(B.PAD, [x, pads], [padded]))
    m.inputs, m.outputs = [x], outputs
    converted = _check_parity(m, rng.normal(size=(1, 8, 8, 4)).astype(np.float32))
    assert "Pad" not in [n.op_type for n in converted.graph.node]


@pytest.mark.parametrize(("align", "half"), [(False, False), (True, False), (False, True)])
def test_resize_read_by_a_narrowing_1x1_convolution_runs_after_it(align: bool, half: bool) -> None:
    """pose_detection upsamples 1152 channels and convolves them down to 192: the 1x1 convolution runs first,
    on the small map, and its RELU6 after the resize (bilinear weights sum to one, so the bias commutes)."""
    rng = _rng(12)
    relu6 = tflite.ActivationFunctionType.RELU6

    def resize_options(b: flatbuffers.Builder) -> int:
        tflite.ResizeBilinearOptionsStart(b)
        tflite.ResizeBilinearOptionsAddAlignCorners(b, align)
        tflite.ResizeBilinearOptionsAddHalfPixelCenters(b, half)
        return int(tflite.ResizeBilinearOptionsEnd(b))

    m = TinyModel()
    x = m.add(Tensor("x", (1, 5, 6, 24)))
    size = m.add(Tensor("size", (2,), T.INT32, np.array([10, 12], np.int32)))
    up = m.add(Tensor("up", (1, 10, 12, 24)))
    w = m.add(Tensor("w", (8, 1, 1, 24), data=rng.normal(size=(8, 1, 1, 24)).astype(np.float32)))
    bias = m.add(Tensor("b", (8,), data=rng.normal(size=8).astype(np.float32) * 3))
    y = m.add(Tensor("y", (1, 10, 12, 8)))
    m.ops = [
        Op(B.RESIZE_BILINEAR, [x, size], [up], Opts.ResizeBilinearOptions, resize_options),
        Op(
            B.CONV_2D,
            [up, w, bias],
            [y],
            Opts.Conv2DOptions,
            _conv_options(tflite.Padding.SAME, 1, relu6),
        ),
    ]
    m.inputs, m.outputs = [x], [y]
    converted = _check_parity(m, rng.normal(size=(1, 5, 6, 24)).astype(np.float32) * 2, atol=1e-4)
    ops = [n.op_type for n in converted.graph.node]
    assert ops.index("Conv") < ops.index("Resize")
    inferred = onnx.shape_inference.infer_shapes(converted).graph.value_info
    shapes = {t.name: [d.dim_value for d in t.type.tensor_type.shape.dim] for t in inferred}
    resize = next(n for n in converted.graph.node if n.op_type == "Resize")
    assert shapes[resize.input[0]] == [1, 8, 5, 6]  # the resize reads the 8-channel map, not the 24-channel one


def test_resize_read_by_a_widening_convolution_stays_first() -> None:
    """A 1x1 convolution to more channels than it reads gains nothing from running first: the order stays."""
    m = _resize_model((4, 4), (8, 8), False, True)
    rng = _rng(13)
    up = m.ops[0].outputs[0]
    w = m.add(Tensor("w", (6, 1, 1, 3), data=rng.normal(size=(6, 1, 1, 3)).astype(np.float32)))
    bias = m.add(Tensor("b", (6,), data=rng.normal(size=6).astype(np.float32)))
    y = m.add(Tensor("z", (1, 8, 8, 6)))
    m.ops.append(Op(B.CONV_2D, [up, w, bias], [y], Opts.Conv2DOptions, _conv_options(tflite.Padding.SAME, 1, 0)))
    m.outputs = [y]
    converted = _check_parity(m, rng.normal(size=(1, 4, 4, 3)).astype(np.float32))
    ops = [n.op_type for n in converted.graph.node]
    assert ops.index("Resize") < ops.index("Conv")


def _pooling_block(extra_output: bool) -> TinyModel:
    """A BlazeFace block on 28 channels: conv → (max pool → channel PAD) + (depthwise s2 → conv) → ADD."""
    act = tflite.ActivationFunctionType
    rng = _rng(14)
    m = TinyModel()

    def t(name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        return m.add(Tensor(name, shape, data=None if data is None else data.astype(np.float32)))

    x = t("x", (1, 12, 12, 8))
    a = t("a", (1, 12, 12, 28))
    pooled = t("pooled", (1, 6, 6, 28))
    pads = m.add(Tensor("pads", (4, 2), T.INT32, np.array([[0, 0], [0, 0], [0, 0], [0, 4]], np.int32)))
    shortcut = t("shortcut", (1, 6, 6, 32))
    dw = t("dw", (1, 6, 6, 28))
    y = t("y", (1, 6, 6, 32))
    out = t("out", (1, 6, 6, 32))
    m.ops = [
        Op(
            B.CONV_2D,
            [x, t("w1", (28, 1, 1, 8), rng.normal(size=(28, 1, 1, 8))), t("b1", (28,), rng.normal(size=28))],
            [a],
            Opts.Conv2DOptions,
            _conv_options(tflite.Padding.SAME, 1, act.RELU),
        ),
        Op(
            B.MAX_POOL_2D,
            [a],
            [pooled],
            Opts.Pool2DOptions,
            _options(
                tflite.Pool2DOptionsStart,
                tflite.Pool2DOptionsEnd,
                Padding=tflite.Padding.VALID,
                StrideW=2,
                StrideH=2,
                FilterWidth=2,
                FilterHeight=2,
            ),
        ),
        Op(B.PAD, [pooled, pads], [shortcut]),
        Op(
            B.DEPTHWISE_CONV_2D,
            [a, t("w2", (1, 3, 3, 28), rng.normal(size=(1, 3, 3, 28))), t("b2", (28,), rng.normal(size=28))],
            [dw],
            Opts.DepthwiseConv2DOptions,
            _depthwise_options(tflite.Padding.SAME, 2),
        ),
        Op(
            B.CONV_2D,
            [dw, t("w3", (32, 1, 1, 28), rng.normal(size=(32, 1, 1, 28))), t("b3", (32,), rng.normal(size=32))],
            [y],
            Opts.Conv2DOptions,
            _conv_options(tflite.Padding.SAME, 1, act.NONE),
        ),
        Op(
            B.ADD,
            [y, shortcut],
            [out],
            Opts.AddOptions,
            _options(tflite.AddOptionsStart, tflite.AddOptionsEnd, FusedActivationFunction=act.RELU),
        ),
    ]
    m.inputs, m.outputs = [x], [out, a] if extra_output else [out]
    return m


def _filters(model: onnx.ModelProto) -> list[int]:
    """Output channels of every Conv in graph order."""
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    return [weights[n.input[1]][0] for n in model.graph.node if n.op_type == "Conv"]


def test_pooled_activations_are_widened_with_zero_channels() -> None:
    """28 channels that are max-pooled are carried as 32 (ONNX Runtime pools in its blocked layout only on
    multiples of 16): the extra channels are zero, read by nothing that keeps them, and the outputs exact."""
    m = _pooling_block(extra_output=False)
    converted = _check_parity(m, _rng(15).normal(size=(1, 12, 12, 8)).astype(np.float32), atol=1e-4)
    assert _filters(converted) == [32, 32, 32, 32]  # conv, channel PAD, depthwise, conv


def test_activations_that_leave_the_graph_keep_their_channels() -> None:
    m = _pooling_block(extra_output=True)
    converted = _check_parity(m, _rng(15).normal(size=(1, 12, 12, 8)).astype(np.float32), atol=1e-4)
    assert _filters(converted) == [28, 32, 28, 32]

"""Read a TFLite flatbuffer (first subgraph) into plain dataclasses, with the `tflite` package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from export.tflite_onnx.errors import ConversionError

_DTYPES: dict[int, np.dtype[Any]] = {
    tflite.TensorType.FLOAT32: np.dtype("<f4"),
    tflite.TensorType.FLOAT16: np.dtype("<f2"),
    tflite.TensorType.INT32: np.dtype("<i4"),
    tflite.TensorType.UINT8: np.dtype("u1"),
    tflite.TensorType.INT64: np.dtype("<i8"),
    tflite.TensorType.BOOL: np.dtype("?"),
    tflite.TensorType.INT16: np.dtype("<i2"),
    tflite.TensorType.INT8: np.dtype("i1"),
    tflite.TensorType.FLOAT64: np.dtype("<f8"),
}

# Vector types a sparse dimension's segments/indices may be stored as (tflite SparseIndexVector union).
_INDEX_VECTORS: dict[int, Any] = {
    tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
    tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
    tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
}


@dataclass(frozen=True)
class SparseDim:
    """One level of a sparse tensor's traversal: dense with `dense_size`, or CSR with segments and indices."""

    dense: bool
    dense_size: int
    segments: np.ndarray
    indices: np.ndarray


@dataclass(frozen=True)
class Sparsity:
    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dims: tuple[SparseDim, ...]


@dataclass(frozen=True)
class Quantization:
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    data: np.ndarray | None = None  # raw buffer contents (for a sparse tensor: its non-zero values only)
    sparsity: Sparsity | None = None
    quantization: Quantization | None = None


@dataclass(frozen=True)
class OpInfo:
    index: int
    kind: str  # builtin name (e.g. "CONV_2D") or "CUSTOM:<custom code>"
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options_type: int
    options_table: Any  # flatbuffers Table of the builtin options, or None
    custom_options: bytes = b""

    def options(self, cls: Any) -> Any:
        """The builtin options as `cls` (e.g. tflite.Conv2DOptions); defaults when the model stored none."""
        opts = cls()
        if self.options_table is None:
            # An empty table reads every field as its schema default.
            import flatbuffers

            builder = flatbuffers.Builder(16)
            builder.StartObject(0)
            builder.Finish(builder.EndObject())
            buf = builder.Output()
            opts.Init(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
            return opts
        opts.Init(self.options_table.Bytes, self.options_table.Pos)
        return opts


@dataclass
class TfliteGraph:
    name: str
    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""
    metadata: dict[str, bytes] = field(default_factory=dict)


def _index_vector(kind: int, table: Any) -> np.ndarray:
    if kind == tflite.SparseIndexVector.NONE or table is None:
        return np.zeros(0, dtype=np.int64)
    vec = _INDEX_VECTORS[kind]()
    vec.Init(table.Bytes, table.Pos)
    return np.asarray(vec.ValuesAsNumpy(), dtype=np.int64).reshape(-1)


def _sparsity(raw: Any) -> Sparsity | None:
    if raw is None:
        return None
    dims = []
    for d in range(raw.DimMetadataLength()):
        meta = raw.DimMetadata(d)
        dense = meta.Format() == tflite.DimensionType.DENSE
        dims.append(
            SparseDim(
                dense=dense,
                dense_size=int(meta.DenseSize()),
                segments=_index_vector(meta.ArraySegmentsType(), meta.ArraySegments()),
                indices=_index_vector(meta.ArrayIndicesType(), meta.ArrayIndices()),
            )
        )
    order = tuple(int(x) for x in raw.TraversalOrderAsNumpy()) if raw.TraversalOrderLength() else ()
    block_map = tuple(int(x) for x in raw.BlockMapAsNumpy()) if raw.BlockMapLength() else ()
    return Sparsity(traversal_order=order, block_map=block_map, dims=tuple(dims))


def _quantization(raw: Any) -> Quantization | None:
    if raw is None or raw.ScaleLength() == 0:
        return None
    zero = raw.ZeroPointAsNumpy() if raw.ZeroPointLength() else np.zeros(raw.ScaleLength(), dtype=np.int64)
    return Quantization(
        scale=np.asarray(raw.ScaleAsNumpy(), dtype=np.float32),
        zero_point=np.asarray(zero, dtype=np.int64),
        axis=int(raw.QuantizedDimension()),
    )


def _op_kind(model: Any, opcode_index: int) -> str:
    code = model.OperatorCodes(opcode_index)
    builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
    if builtin == tflite.BuiltinOperator.CUSTOM:
        custom = code.CustomCode()
        return "CUSTOM:" + (custom.decode() if custom else "?")
    return str(BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}"))


def read_tflite(data: bytes, name: str) -> TfliteGraph:
    """Parse a .tflite file's bytes. `name` is used in error messages."""
    try:
        if not tflite.Model.ModelBufferHasIdentifier(data, 0):
            raise ConversionError(f"{name}: not a TFLite flatbuffer (missing 'TFL3' identifier)")
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ConversionError(f"{name}: the model has no subgraph")
        graph = model.Subgraphs(0)
        tensors: list[TensorInfo] = []
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            ttype = int(t.Type())
            if ttype not in _DTYPES:
                raise ConversionError(f"{name}: tensor #{i} {t.Name()!r} has unsupported element type {ttype}")
            dtype = _DTYPES[ttype]
            shape = tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            buf = model.Buffers(t.Buffer())
            contents = None
            if buf is not None and buf.DataLength() > 0:
                contents = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype)
            sparsity = _sparsity(t.Sparsity())
            if contents is not None and sparsity is None:
                contents = contents.reshape(shape)
            tensors.append(
                TensorInfo(
                    index=i,
                    name=(t.Name() or b"").decode(),
                    shape=shape,
                    dtype=dtype,
                    data=contents,
                    sparsity=sparsity,
                    quantization=_quantization(t.Quantization()),
                )
            )
        ops: list[OpInfo] = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            custom = op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else b""
            ops.append(
                OpInfo(
                    index=i,
                    kind=_op_kind(model, op.OpcodeIndex()),
                    inputs=tuple(int(x) for x in op.InputsAsNumpy()) if op.InputsLength() else (),
                    outputs=tuple(int(x) for x in op.OutputsAsNumpy()) if op.OutputsLength() else (),
                    options_type=int(op.BuiltinOptionsType()),
                    options_table=op.BuiltinOptions(),
                    custom_options=custom,
                )
            )
        inputs = tuple(int(graph.Inputs(i)) for i in range(graph.InputsLength()))
        outputs = tuple(int(graph.Outputs(i)) for i in range(graph.OutputsLength()))
        description = (model.Description() or b"").decode(errors="replace")
    except ConversionError:
        raise
    except Exception as exc:  # the flatbuffer accessors raise assorted errors on a damaged file
        raise ConversionError(f"{name}: cannot parse the TFLite flatbuffer: {exc}") from exc
    return TfliteGraph(name=name, tensors=tensors, ops=ops, inputs=inputs, outputs=outputs, description=description)

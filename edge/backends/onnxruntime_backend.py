"""ONNX Runtime backend: the portable runtime (TensorRT, CUDA or CPU execution providers)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.backends.base import Backend, BackendConfig, BackendError, Provider, TensorSpec, register

log = logging.getLogger(__name__)

# Config name → ONNX Runtime execution provider.
PROVIDER_NAMES: dict[Provider, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}

# ONNX tensor element type → numpy dtype name.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def resolve_providers(requested: list[Provider], available: list[str]) -> list[str]:
    """The requested providers that this ONNX Runtime build has, in order; CPU is always last resort."""
    chosen: list[str] = []
    for name in requested:
        ort_name = PROVIDER_NAMES[name]
        if ort_name in available:
            if ort_name not in chosen:
                chosen.append(ort_name)
        else:
            log.warning("execution provider %s was requested but this onnxruntime build lacks it", ort_name)
    if not chosen:
        log.warning("none of the requested providers %s is available; running on CPU", requested)
        chosen.append(PROVIDER_NAMES["cpu"])
    return chosen


@register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """One ONNX model in one `onnxruntime.InferenceSession`."""

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._session: ort.InferenceSession | None = None
        self._output_names: list[str] = []

    def load(self, model_path: Path, outputs: Sequence[str] | None = None) -> None:
        """Load the model. `outputs` keeps only those graph outputs and the nodes they need, leaving out
        the nodes that fed only the dropped ones (e.g. a segmentation head the pipeline does not use)."""
        model_path = Path(model_path)
        if not model_path.is_file():
            raise BackendError(f"model file {model_path} does not exist")
        model: str | bytes = str(model_path)
        if outputs is not None:
            try:
                model = keep_graph_outputs(model_path.read_bytes(), set(outputs))
            except (OSError, ValueError) as exc:
                raise BackendError(f"cannot prepare ONNX model {model_path}: {exc}") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        if self.config.threads > 1:
            # A session's pool workers keep spinning for a while after each run by default. The pipeline runs
            # its models one after the other, each with its own pool: on a 2-core device the workers of the
            # model that just ran spun beside the next one's threads (and beside the camera and analyzer
            # threads). Spin during a run, between its parallel steps, and stop when it returns.
            options.add_session_config_entry("session.force_spinning_stop", "1")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = resolve_providers(self.config.providers, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(
                model, sess_options=options, providers=providers, provider_options=self._provider_options(providers)
            )
        except Exception as exc:  # onnxruntime raises its own untyped exceptions (Fail, InvalidGraph, ...)
            raise BackendError(f"cannot load ONNX model {model_path}: {exc}") from exc
        self.model_path = model_path
        self._output_names = [o.name for o in self._session.get_outputs()]
        log.debug("loaded %s on %s (%d threads)", model_path.name, self._session.get_providers(), self.config.threads)

    def _provider_options(self, providers: list[str]) -> list[dict[str, str]]:
        """Per-provider options: TensorRT gets the configured precision and engine cache; the others run the
        model's own fp32 weights, which is said out loud when another precision was asked for."""
        trt = PROVIDER_NAMES["tensorrt"]
        precision = self.config.precision
        if precision != "fp32" and trt not in providers:
            log.warning(
                "precision %s applies to TensorRT; ONNX Runtime on %s runs the model's fp32 weights",
                precision,
                providers[0],
            )
        if precision == "int8" and trt in providers:
            raise BackendError(
                "int8 on ONNX Runtime's TensorRT provider needs a calibrated engine: use the tensorrt backend"
            )
        options: list[dict[str, str]] = []
        for name in providers:
            opts: dict[str, str] = {}
            if name == trt:
                opts["trt_fp16_enable"] = "True" if precision == "fp16" else "False"
                if self.config.engine_cache is not None:
                    opts["trt_engine_cache_enable"] = "True"
                    opts["trt_engine_cache_path"] = str(self.config.engine_cache)
            options.append(opts)
        return options

    @property
    def session(self) -> ort.InferenceSession:
        if self._session is None:
            raise BackendError("no model loaded: call load() first")
        return self._session

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really runs on."""
        return list(self.session.get_providers())

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            outputs = self.session.run(self._output_names, inputs)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise BackendError(f"inference failed on {self.model_path}: {exc}") from exc
        return [np.asarray(o) for o in outputs]

    @property
    def inputs(self) -> list[TensorSpec]:
        return [_spec(i) for i in self.session.get_inputs()]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [_spec(o) for o in self.session.get_outputs()]


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) or d is None else str(d) for d in arg.shape)
    return TensorSpec(name=arg.name, shape=shape, dtype=_ORT_TYPES.get(arg.type, "float32"))


# --- graph-output selection on the serialised model (protobuf wire format; no `onnx` on devices) ----------

_MODEL_GRAPH = 7  # ModelProto.graph
_GRAPH_NODE = 1  # GraphProto.node
_GRAPH_OUTPUT = 12  # GraphProto.output
_VALUE_INFO_NAME = 1  # ValueInfoProto.name
_NODE_INPUT = 1  # NodeProto.input
_NODE_OUTPUT = 2  # NodeProto.output
_NODE_ATTRIBUTE = 5  # NodeProto.attribute
_ATTRIBUTE_GRAPHS = (6, 11)  # AttributeProto.g, AttributeProto.graphs: subgraphs that may read outer values


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, field start, payload start, field end) of each top-level field."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _varint(data, pos)
            payload = pos
        elif wire == 1:
            payload, end = pos, pos + 8
        elif wire == 2:
            length, payload = _varint(data, pos)
            end = payload + length
        elif wire == 5:
            payload, end = pos, pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if end > len(data):
            raise ValueError("truncated protobuf field")
        yield number, wire, start, payload, end
        pos = end


def _value_info_name(data: bytes) -> str:
    for number, wire, _, payload, end in _fields(data):
        if number == _VALUE_INFO_NAME and wire == 2:
            return data[payload:end].decode("utf-8")
    return ""


def _node_io(data: bytes) -> tuple[list[str], list[str], bool]:
    """A NodeProto's input names, output names, and whether it holds a subgraph."""
    inputs: list[str] = []
    outputs: list[str] = []
    subgraph = False
    for number, wire, _, payload, end in _fields(data):
        if wire != 2:
            continue
        if number == _NODE_INPUT:
            inputs.append(data[payload:end].decode("utf-8"))
        elif number == _NODE_OUTPUT:
            outputs.append(data[payload:end].decode("utf-8"))
        elif number == _NODE_ATTRIBUTE:
            subgraph = subgraph or any(n in _ATTRIBUTE_GRAPHS for n, *_ in _fields(data[payload:end]))
    return inputs, outputs, subgraph


def _dead_nodes(graph: bytes, outputs: set[str]) -> set[int]:
    """Offsets of the NodeProtos that no graph output in `outputs` depends on.

    ONNX Runtime runs every node of a graph, even one whose result nothing reads, so dropping a graph
    output saves nothing unless the nodes that fed only it go too. Nodes are in topological order
    (an ONNX rule), so one backward sweep finds the needed ones. A graph with subgraphs (If, Loop,
    Scan) is left whole: their nodes read outer values that the node's own inputs do not list.
    """
    nodes: list[tuple[int, list[str], list[str]]] = []
    for number, wire, start, payload, end in _fields(graph):
        if number == _GRAPH_NODE and wire == 2:
            inputs, outs, subgraph = _node_io(graph[payload:end])
            if subgraph:
                return set()
            nodes.append((start, inputs, outs))
    needed = set(outputs)
    dead: set[int] = set()
    for start, inputs, outs in reversed(nodes):
        if needed.intersection(outs):
            needed.update(inputs)
        else:
            dead.add(start)
    return dead


def keep_graph_outputs(model: bytes, keep: set[str]) -> bytes:
    """The serialised ONNX model with only the graph outputs named in `keep`, and only the nodes they need."""
    out = bytearray()
    found_graph = False
    for number, wire, start, payload, end in _fields(model):
        if number != _MODEL_GRAPH or wire != 2:
            out += model[start:end]
            continue
        found_graph = True
        graph = model[payload:end]
        names = [
            _value_info_name(graph[g_payload:g_end])
            for g_number, g_wire, _, g_payload, g_end in _fields(graph)
            if g_number == _GRAPH_OUTPUT and g_wire == 2
        ]
        if keep - set(names):
            raise ValueError(f"no output(s) {', '.join(sorted(keep - set(names)))}; it has {', '.join(names)}")
        dead = _dead_nodes(graph, keep)
        kept = bytearray()
        for g_number, g_wire, g_start, g_payload, g_end in _fields(graph):
            if g_number == _GRAPH_OUTPUT and g_wire == 2 and _value_info_name(graph[g_payload:g_end]) not in keep:
                continue
            if g_number == _GRAPH_NODE and g_start in dead:
                continue
            kept += graph[g_start:g_end]
        out += _encode_varint((_MODEL_GRAPH << 3) | 2) + _encode_varint(len(kept)) + kept
    if not found_graph:
        raise ValueError("not an ONNX model (no graph)")
    return bytes(out)

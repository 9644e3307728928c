"""ONNX Runtime backend: the portable runtime (TensorRT, CUDA or CPU execution providers)."""

from __future__ import annotations

import logging
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

    def load(self, model_path: Path) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise BackendError(f"model file {model_path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = resolve_providers(self.config.providers, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions (Fail, InvalidGraph, ...)
            raise BackendError(f"cannot load ONNX model {model_path}: {exc}") from exc
        self.model_path = model_path
        self._output_names = [o.name for o in self._session.get_outputs()]
        log.info("loaded %s on %s (%d threads)", model_path.name, self._session.get_providers(), self.config.threads)

    @property
    def session(self) -> ort.InferenceSession:
        if self._session is None:
            raise BackendError("no model loaded: call load() first")
        return self._session

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

"""TensorRT backend: a prebuilt engine, pycuda device buffers, pinned host memory, one CUDA stream.

The only module of the edge runtime that imports tensorrt and pycuda. Importing it on a host without
them raises ImportError, which the registry turns into BackendUnavailable (see selection.py for the
fallback rule). Engines are built beforehand by `edgescreen engine build` and found in the engine cache
by ONNX sha256 + TensorRT version + GPU name + precision.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pycuda.driver as cuda
import tensorrt as trt

from contract.hashing import sha256_file
from edge.backends.base import Backend, BackendConfig, BackendError, TensorSpec, register
from edge.backends.engine_cache import EngineKey, default_cache_dir, lookup

log = logging.getLogger(__name__)

_INIT_LOCK = threading.Lock()
_CONTEXT: Any = None


def _cuda_context() -> Any:
    """The device's primary CUDA context, shared by every engine in the process."""
    global _CONTEXT  # noqa: PLW0603  # one primary context per process
    with _INIT_LOCK:
        if _CONTEXT is None:
            cuda.init()
            _CONTEXT = cuda.Device(0).retain_primary_context()
        return _CONTEXT


def gpu_name() -> str:
    """Name of CUDA device 0 (e.g. 'Orin'), part of the engine cache key."""
    cuda.init()
    return str(cuda.Device(0).name())


def _np_dtype(dtype: Any) -> np.dtype[Any]:
    return np.dtype(trt.nptype(dtype))


class _Binding:
    """One I/O tensor: pinned host array + device buffer, grown when a larger shape arrives."""

    def __init__(self, name: str, dtype: np.dtype[Any], is_input: bool) -> None:
        self.name = name
        self.dtype = dtype
        self.is_input = is_input
        self.capacity = 0
        self.host: np.ndarray = np.empty(0, dtype)
        self.device: Any = None

    def ensure(self, shape: tuple[int, ...]) -> None:
        size = int(np.prod(shape)) if shape else 1
        if size > self.capacity:
            if self.device is not None:
                self.device.free()
            self.host = cuda.pagelocked_empty(size, self.dtype)
            self.device = cuda.mem_alloc(max(1, size * self.dtype.itemsize))
            self.capacity = size


@register("tensorrt")
class TensorRTBackend(Backend):
    """One TensorRT engine in one execution context."""

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._bindings: dict[str, _Binding] = {}
        self._input_names: list[str] = []
        self._output_names: list[str] = []
        self._lock = threading.Lock()

    def resolve_engine(self, model_path: Path) -> Path:
        """An .engine path is used as is; for an .onnx model, the cached engine built for this host."""
        if model_path.suffix == ".engine":
            return model_path
        cache = self.config.engine_cache or default_cache_dir(model_path)
        key = EngineKey(sha256_file(model_path), str(trt.__version__), gpu_name(), self.config.precision)
        found = lookup(cache, model_path.name.removesuffix(".onnx"), key)
        if not found.found:
            stale = f" ({len(found.stale)} stale engine(s) for another ONNX/TensorRT/GPU)" if found.stale else ""
            raise BackendError(
                f"no {self.config.precision} TensorRT engine for {model_path} in {cache}{stale}; build it with "
                f"`edgescreen engine build {model_path} --precision {self.config.precision} --cache {cache}`"
            )
        return found.path

    def load(self, model_path: Path) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise BackendError(f"model file {model_path} does not exist")
        engine_file = self.resolve_engine(model_path)
        ctx = _cuda_context()
        ctx.push()
        try:
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self._engine = runtime.deserialize_cuda_engine(engine_file.read_bytes())
            if self._engine is None:
                raise BackendError(f"TensorRT could not deserialize {engine_file} (built by another version/GPU?)")
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            for i in range(self._engine.num_io_tensors):
                name = self._engine.get_tensor_name(i)
                is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                self._bindings[name] = _Binding(name, _np_dtype(self._engine.get_tensor_dtype(name)), is_input)
                (self._input_names if is_input else self._output_names).append(name)
        finally:
            ctx.pop()
        self.model_path = model_path
        log.info("loaded TensorRT engine %s for %s", engine_file.name, model_path.name)
        self.warmup()

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._context is None:
            raise BackendError("no engine loaded: call load() first")
        missing = set(self._input_names) - set(inputs)
        if missing:
            raise BackendError(f"inputs missing for {self.model_path}: {sorted(missing)}")
        ctx = _cuda_context()
        with self._lock:
            ctx.push()
            try:
                return self._run(inputs)
            except cuda.Error as exc:
                raise BackendError(f"TensorRT inference failed on {self.model_path}: {exc}") from exc
            finally:
                ctx.pop()

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name in self._input_names:
            binding = self._bindings[name]
            array = np.ascontiguousarray(inputs[name], dtype=binding.dtype)
            if not self._context.set_input_shape(name, array.shape):
                raise BackendError(f"shape {array.shape} of input {name!r} is outside the engine's profile")
            binding.ensure(array.shape)
            host = binding.host[: array.size]
            host[:] = array.ravel()
            cuda.memcpy_htod_async(binding.device, host, self._stream)
            self._context.set_tensor_address(name, int(binding.device))
        shapes = {}
        for name in self._output_names:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(name))
            binding = self._bindings[name]
            binding.ensure(shape)
            shapes[name] = shape
            self._context.set_tensor_address(name, int(binding.device))
        if not self._context.execute_async_v3(self._stream.handle):
            raise BackendError(f"TensorRT execution failed on {self.model_path}")
        for name in self._output_names:
            binding = self._bindings[name]
            size = int(np.prod(shapes[name])) if shapes[name] else 1
            cuda.memcpy_dtoh_async(binding.host[:size], binding.device, self._stream)
        self._stream.synchronize()
        outs = []
        for name in self._output_names:
            size = int(np.prod(shapes[name])) if shapes[name] else 1
            outs.append(self._bindings[name].host[:size].reshape(shapes[name]).copy())
        return outs

    def _spec(self, name: str) -> TensorSpec:
        shape = tuple(int(d) if d >= 0 else None for d in self._engine.get_tensor_shape(name))
        return TensorSpec(name=name, shape=shape, dtype=str(self._bindings[name].dtype))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self._input_names]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self._spec(n) for n in self._output_names]

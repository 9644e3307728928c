"""A Backend on the LiteRT interpreter: the reference runtime for parity tests and benchmarks (never on devices)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from edge.backends.base import Backend, BackendConfig, BackendError, TensorSpec


class LiteRtBackend(Backend):
    """One .tflite model in one `ai_edge_litert` interpreter (XNNPACK, `config.threads` threads)."""

    type_key = "litert"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._interpreter: Interpreter | None = None

    def load(self, model_path: Path) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise BackendError(f"model file {model_path} does not exist")
        try:
            interpreter = Interpreter(model_path=str(model_path), num_threads=self.config.threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot load TFLite model {model_path}: {exc}") from exc
        self._interpreter = interpreter
        self.model_path = model_path

    @property
    def interpreter(self) -> Interpreter:
        if self._interpreter is None:
            raise BackendError("no model loaded: call load() first")
        return self._interpreter

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        it = self.interpreter
        for detail in it.get_input_details():
            it.set_tensor(detail["index"], np.ascontiguousarray(inputs[detail["name"]], dtype=detail["dtype"]))
        it.invoke()
        return [it.get_tensor(d["index"]) for d in it.get_output_details()]  # get_tensor returns a copy

    @property
    def inputs(self) -> list[TensorSpec]:
        return [
            TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name)
            for d in self.interpreter.get_input_details()
        ]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [
            TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name)
            for d in self.interpreter.get_output_details()
        ]


def litert_factory(tflite_dir: Path, threads: int = 1) -> Callable[[str], Backend]:
    """A pipeline backend factory that loads `<name>.tflite` from `tflite_dir` into LiteRT."""

    def make(name: str) -> Backend:
        backend = LiteRtBackend(BackendConfig(threads=threads))
        backend.load(Path(tflite_dir) / f"{name}.tflite")
        return backend

    return make


def extract_tflite_models(model_dir: Path, destination: Path) -> Path:
    """Write the five original .tflite models (checked against their pinned sha256) into `destination`.

    They come from the same pinned MediaPipe wheel the model store was converted from.
    """
    import zipfile

    from export.mediapipe_models import MODEL_SOURCES, find_wheel, read_model

    wheel = find_wheel(Path(model_dir))
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for source in MODEL_SOURCES:
            target = destination / f"{source.name}.tflite"
            if not target.is_file():
                target.write_bytes(read_model(archive, source, wheel))
    return destination
